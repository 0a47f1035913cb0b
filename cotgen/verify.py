"""Final-answer extraction and grading against ground truth, with math-verify."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

# math-verify bounds each parse/verify call with SIGALRM; a pathological expression
# (a huge power, a deep nesting) otherwise hangs sympy.
TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Grade:
    """The grader's verdict on one text."""

    correct: bool | None  # None: the text states no final answer, or there is no gold
    answer: str | None  # the extracted final answer, as written; None when there is none


# -- extraction ----------------------------------------------------------------------

_BOX = re.compile(r"\\(?:boxed|fbox)\b\s*")
_HASHES = re.compile(r"^[ \t]*####[ \t]*(\S.*?)[ \t]*$", re.M)
_ANSWER_IS = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b[\s:]*", re.I)
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_NUMBER_THEN_WORDS = re.compile(rf"^\\?\$?\s*({_NUMBER})\s*%?\s*[A-Za-z][A-Za-z ]*$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
# The end of a sentence in plain prose: a period or semicolon followed by a space.
_SENTENCE_END = re.compile(r"[.;]\s")


def _closing_brace(text: str, start: int) -> int:
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


def _last_box(text: str) -> str | None:
    """Content of the last complete \\boxed{...} / \\fbox{...} (or `\\boxed 5`)."""
    found: str | None = None
    for m in _BOX.finditer(text):
        start = m.end()
        if start < len(text) and text[start] == "{":
            end = _closing_brace(text, start)
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
    boxed = _last_box(text)
    if boxed is not None:
        return boxed
    hashes = _HASHES.findall(text)
    if hashes:
        return hashes[-1].rstrip(".").strip() or None
    return _answer_is(text)


def normalize_gold(gold: str | None) -> str | None:
    """The bare gold answer: GSM8K's `... #### 1,000` -> `1000`; a boxed solution -> its box."""
    if gold is None:
        return None
    gold = gold.strip()
    if "####" in gold:
        gold = gold.rsplit("####", 1)[1].strip()
    elif _BOX.search(gold):
        gold = _last_box(gold) or gold
    if _THOUSANDS.match(gold):
        gold = gold.replace(",", "")
    return gold or None


# -- comparison ----------------------------------------------------------------------


def _wrap(answer: str) -> str:
    """`answer` in a form math-verify reads as one LaTeX answer."""
    if _THOUSANDS.match(answer):
        # "1,000" inside a box could read as the set {1, 0}; it is a number.
        answer = answer.replace(",", "")
    if _closing_brace("{" + answer + "}", 0) == len(answer) + 1:
        return "\\boxed{" + answer + "}"
    return "$" + answer + "$"


def _math_verify():
    import math_verify

    # With the timeout off (outside the main thread) math-verify warns once per process;
    # the grader knows and says so in grade()'s docstring.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return math_verify


@lru_cache(maxsize=4096)
def _parse(answer: str, timeout: int | None) -> tuple:
    """math-verify's parse of one wrapped answer; () when it fails or times out.

    Cached: during a search the same gold is compared with every terminal node.
    """
    mv = _math_verify()
    try:
        return tuple(mv.parse(_wrap(answer), parsing_timeout=timeout))
    except (Exception, mv.errors.TimeoutException):
        return ()


def _plain(answer: str) -> str:
    """A last-resort textual form for answers math-verify cannot parse."""
    answer = re.sub(r"\\text\{([^{}]*)\}", r"\1", answer)
    return re.sub(r"[\s$]|\\[,;!: ]", "", answer).lower()


def grade(text: str, gold: str | None, *, timeout: int | None = TIMEOUT_SECONDS) -> Grade:
    """Grade the final answer stated in `text` against `gold`.

    `correct` is None when the text states no final answer or `gold` is None; a
    timeout or an error inside math-verify counts as wrong (the answer is kept).
    math-verify's SIGALRM timeout only works in the main thread, so elsewhere the
    comparison runs without one; call from the main thread (or a process pool) when
    the answers are untrusted and long.
    """
    answer = extract_answer(text)
    gold = normalize_gold(gold)
    if answer is None or gold is None:
        return Grade(correct=None, answer=answer)
    if threading.current_thread() is not threading.main_thread():
        timeout = None
    gold_parsed = _parse(gold, timeout)
    answer_parsed = _parse(answer, timeout)
    if not gold_parsed or not answer_parsed:
        # Never str() a parsed object (it can hang): compare the written forms instead.
        return Grade(correct=_plain(gold) == _plain(answer), answer=answer)
    mv = _math_verify()
    try:
        ok = mv.verify(list(gold_parsed), list(answer_parsed), timeout_seconds=timeout)
    except (Exception, mv.errors.TimeoutException):
        ok = False
    return Grade(correct=bool(ok), answer=answer)


def grade_many(pairs: Iterable[tuple[str, str | None]]) -> list[Grade]:
    """grade() over (text, gold) pairs, in order."""
    return [grade(text, gold) for text, gold in pairs]
