"""Final answers in model text: the last \\boxed{}, GSM8K's `#### N`, "the answer is X".

Standard library only: the Tree uses it to decide which steps may be terminal, the grader
(cotgen.verify) to find what to compare, the formats to print the output.
"""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\b\s*")
_HASHES = re.compile(r"^[ \t]*####[ \t]*(\S.*?)[ \t]*$", re.M)
_ANSWER_IS = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b[\s:]*", re.I)
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_NUMBER_THEN_WORDS = re.compile(rf"^\\?\$?\s*({_NUMBER})\s*%?\s*[A-Za-z][A-Za-z ]*$")
# The end of a sentence in plain prose: a period or semicolon followed by a space.
_SENTENCE_END = re.compile(r"[.;]\s")


def closing_brace(text: str, start: int) -> int:
    """Index of the '}' matching the '{' at `start`, or -1 when it is never closed."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2  # an escaped brace (\{ \}) does not count
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def last_box(text: str) -> str | None:
    """Content of the last complete \\boxed{...} / \\fbox{...} (or `\\boxed 5`)."""
    found: str | None = None
    for m in _BOX.finditer(text):
        start = m.end()
        if start < len(text) and text[start] == "{":
            end = closing_brace(text, start)
            if end < 0:
                continue  # cut off mid-answer: not an answer
            content = text[start + 1 : end].strip()
        else:
            # `\boxed 5`: TeX takes the next token as the argument.
            token = re.match(r"[^\s$.,;]+", text[start:])
            content = token.group(0) if token else ""
        if content:
            found = content
    return found


def _answer_is(text: str) -> str | None:
    """X in the last "the answer is X", trimmed to the math or the sentence."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :].lstrip("*_ ")
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if rest.startswith(open_):
            end = rest.find(close, len(open_))
            if end > len(open_):
                return rest[len(open_) : end].strip() or None
            return None
    line = rest.split("\n", 1)[0]
    cut = _SENTENCE_END.search(line + " ")
    candidate = line[: cut.start()] if cut else line
    candidate = candidate.strip().rstrip(".*_ ").strip("$ ")
    number = _NUMBER_THEN_WORDS.match(candidate)
    if number:
        # "18 dollars": the unit words would parse as a product of symbols.
        candidate = number.group(1)
    return candidate or None


def extract_answer(text: str) -> str | None:
    """The final answer stated in `text`, or None when it states none.

    In order: the last brace-matched \\boxed{} / \\fbox{}, else GSM8K's `#### N`, else
    "the answer is X". Only these count: a bare last number is not an answer, so an
    unfinished chain of steps is never graded correct.
    """
    boxed = last_box(text)
    if boxed is not None:
        return boxed
    hashes = _HASHES.findall(text)
    if hashes:
        return hashes[-1].rstrip(".").strip() or None
    return _answer_is(text)


_TEXT = re.compile(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}")
_SPACING = re.compile(r"[\s$]|\\[,;!: ]|\\(?:left|right)(?=[()\[\]|.])|\{,\}")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)\Z")


def written_form(answer: str) -> str:
    """An answer as written, without what does not change it: spacing (LaTeX's too), `$`,
    `\\left`/`\\right`, the `{,}` of `1{,}000`, `\\text{}`-like wrappers and letter case.
    The grader compares these when math-verify cannot parse an answer."""
    return _SPACING.sub("", _TEXT.sub(r"\1", answer)).lower()


def answer_key(answer: str) -> str:
    """The form an answer is counted under when answers are voted on: its written_form,
    with a plain number written one way (`72`, `72.0`, `+72`, `72.`; `.5` as `0.5`; `1,000`
    and `1{,}000` as `1000`). Equal keys are the same answer; different keys may still be (`\\frac{1}{2}` and `0.5`: math-verify tells, at a cost a vote over a
    tree's answers need not pay)."""
    key = written_form(answer)
    if _PLAIN_NUMBER.match(key):
        whole, _, frac = key.replace(",", "").lstrip("+").partition(".")
        sign = "-" if whole.startswith("-") else ""
        whole = whole.lstrip("-").lstrip("0") or "0"
        frac = frac.rstrip("0")
        key = ("" if whole == "0" and not frac else sign) + whole + (f".{frac}" if frac else "")
    return key
