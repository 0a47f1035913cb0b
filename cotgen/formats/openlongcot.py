"""LLaMA-O1's OpenLongCoT text format: its vocabulary (every tag, here only), Tree -> one text
row, and the row parsed back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from cotgen.errors import DataError
from cotgen.formats.base import (
    REPLACEMENT_WARNING,
    SURROGATE_ERROR,
    ExportRefused,
    Finding,
    lone_surrogate,
)
from cotgen.tree import MAX_NODE_ID, Node, Tree, broken_invariants

FATHER_START, FATHER_END = "<start_of_father_id>", "<end_of_father_id>"
LOCAL_START, LOCAL_END = "<start_of_local_id>", "<end_of_local_id>"
THOUGHT_START, THOUGHT_END = "<start_of_thought>", "<end_of_thought>"
RATING_START, RATING_END = "<start_of_rating>", "<end_of_rating>"
RATING_TOKENS = {
    "positive": "<positive_rating>",
    "negative": "<negative_rating>",
    "unknown": "<unknown_rating>",
}
# Every tag that delimits records; a node text holding one would not parse back.
TAGS = (
    FATHER_START, FATHER_END, LOCAL_START, LOCAL_END,
    THOUGHT_START, THOUGHT_END, RATING_START, RATING_END,
    *RATING_TOKENS.values(),
)  # fmt: skip
# A thought's first characters say the node's kind; plain steps carry no tag.
KIND_TAGS = {
    "problem": "<problem>",
    "critic": "<critic>",
    "refine": "<refine>",
    "conclusion": "<conclusion>",
}
MISSPELLED_RATING = "<unknow_rating>"  # what LLaMA-O1's code writes for <unknown_rating>
# Every special token of the format, in the order the tiny model's tokenizer numbers them.
TOKENS = (*TAGS, *KIND_TAGS.values())

_RATING_OF_TOKEN = {tok: rating for rating, tok in RATING_TOKENS.items()}
_KIND_OF_TAG = {tag: kind for kind, tag in KIND_TAGS.items()}
_KIND_TAG_PREFIXES = tuple(KIND_TAGS.values())

# A record's head, up to its thought. The thought then runs to the first <end_of_thought>
# (str.find: a regex that scans a 50 MB thought char by char takes seconds); tags inside
# it are caught with _STRUCTURAL. Whatever these refuse goes to _diagnose for a message.
_HEAD = re.compile(
    r"\s*<start_of_father_id>(-?[0-9]+)<end_of_father_id>"
    r"<start_of_local_id>(-?[0-9]+)<end_of_local_id><start_of_thought>"
)
_RATING_PART = re.compile(r"<start_of_rating>(<[^<>]*>)<end_of_rating>")
# Anything shaped like a structural tag, known or not, including rating tokens.
_STRUCTURAL = re.compile(r"<(?:start|end)_of_[A-Za-z_]*>|<[A-Za-z]+_rating>")
_WHITESPACE = re.compile(r"\s*")
_INTEGER = re.compile(r"-?[0-9]+")
_TAG_AT = re.compile(r"<[^<>\s]{1,40}>")


class OpenLongCoTParseError(DataError):
    """A row is not valid OpenLongCoT; `offset` is the character where it goes wrong."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"char {offset}: {reason}")
        self.offset = offset
        self.reason = reason


# -- export -----------------------------------------------------------------------------


def record(father: int, local: int, thought: str, rating: str | None = None) -> str:
    """One record: ids and thought, then the rating part when `rating` (positive, negative,
    unknown) is given. `thought` starts with its kind tag, if any; it is not checked here."""
    out = (
        f"{FATHER_START}{father}{FATHER_END}{LOCAL_START}{local}{LOCAL_END}"
        f"{THOUGHT_START}{thought}{THOUGHT_END}"
    )
    return out + (f"{RATING_START}{RATING_TOKENS[rating]}{RATING_END}" if rating else "")


def to_openlongcot(tree: Tree, *, root_rating: bool = False, separator: str = "\n") -> str:
    """The tree as one OpenLongCoT row: records in pre-order, joined by `separator`.

    Raises ExportRefused naming the node when a text is empty or would change meaning on
    parse (a structural tag inside it, or a step starting with a kind tag).
    """
    if not separator or not separator.isspace():
        raise ValueError(f"separator must be whitespace, not {separator!r}")
    if not tree.nodes:
        raise ExportRefused(f"tree {tree.id}: no nodes")
    parts: list[str] = []
    for node in tree.preorder():
        if node.parent == -1:
            text, tag = tree.problem, KIND_TAGS["problem"]
        else:
            text = node.text
            if node.kind == "step":
                tag = ""
            elif node.kind in KIND_TAGS and node.kind != "problem":
                tag = KIND_TAGS[node.kind]
            else:
                raise ExportRefused(f"node {node.id}: kind '{node.kind}' cannot be written in OpenLongCoT")
            if not tag and text.startswith(_KIND_TAG_PREFIXES):
                raise ExportRefused(
                    f"node {node.id} (step): its text starts with a kind tag "
                    f"({text[: text.index('>') + 1]}), which would turn it into another kind on parse"
                )
        if not text:
            raise ExportRefused(f"node {node.id} ({node.kind}): empty text")
        found = _STRUCTURAL.search(text) if "<" in text else None
        if found is not None:
            raise ExportRefused(
                f"node {node.id} ({node.kind}): its text contains the structural tag "
                f"{found.group()} at char {found.start()}, which would break the row"
            )
        if node.rating not in RATING_TOKENS:
            raise ExportRefused(f"node {node.id}: unknown rating '{node.rating}'")
        rating = (
            f"{RATING_START}{RATING_TOKENS[node.rating]}{RATING_END}"
            if node.parent != -1 or root_rating
            else ""
        )
        parts.append(record(node.parent, node.id, tag + text) + rating)
    if len(parts) != len(tree.nodes):
        raise ExportRefused(
            f"tree {tree.id}: {len(tree.nodes) - len(parts)} node(s) are not reachable from the root"
        )
    return separator.join(parts)


# -- parse ------------------------------------------------------------------------------


def parse_openlongcot(text: str) -> Tree:
    """One OpenLongCoT row -> Tree. Raises OpenLongCoTParseError (offset + what was expected)."""
    return _parse(text)[0]


def _parse(text: str) -> tuple[Tree, bool, bool]:
    """The tree, whether the root record carries a rating, whether its thought lacks <problem>."""
    head = _HEAD.match(text)
    if head is None:
        start = _WHITESPACE.match(text).end()
        if start == len(text):
            raise OpenLongCoTParseError(
                start, f"no root: the row holds no record (expected {FATHER_START}-1{FATHER_END}...)"
            )
        raise _diagnose(text, start, False)
    father, local = head.groups()
    if father != "-1" or local != "0":
        raise OpenLongCoTParseError(
            head.start(1),
            f"no root: the first record must be the root (father id -1, local id 0), "
            f"found father id {father}, local id {local}",
        )
    at = head.end()
    problem, pos = _thought(text, at)
    _check_thought(problem, at, 0)
    root_untagged = not problem.startswith(KIND_TAGS["problem"])
    if not root_untagged:
        problem = problem[len(KIND_TAGS["problem"]) :]
        if not problem:
            raise OpenLongCoTParseError(at, "empty thought in node 0: nothing after <problem>")
    rated = _RATING_PART.match(text, pos)
    rating, root_rated = "unknown", rated is not None
    if rated is not None:
        rating = _rating(rated.group(1), rated.start(1))
        pos = rated.end()
    nodes = [Node(0, -1, "problem", problem, rating=rating)]
    declared = {0}
    head_match, rating_match, find = _HEAD.match, _RATING_PART.match, text.find
    while (head := head_match(text, pos)) is not None:
        if len(head.group(1)) > _ID_DIGITS or len(head.group(2)) > _ID_DIGITS:
            _too_long_id(head)
        father, local = int(head.group(1)), int(head.group(2))
        at = head.end()
        end = find(THOUGHT_END, at)
        if end < 0:
            raise _unclosed_thought(at)
        thought = text[at:end]
        pos = end + len(THOUGHT_END)
        rated = rating_match(text, pos)
        if father not in declared or local in declared or local < 0 or rated is None or not thought:
            _record_error(text, head, father, local, thought, pos)
        kind = "step"
        if "<" in thought:
            _check_thought(thought, at, local)
            if thought[0] == "<":
                # A non-root <problem> stays kind 'problem': the invariants report it.
                for tag, tag_kind in _KIND_OF_TAG.items():
                    if thought.startswith(tag):
                        kind, thought = tag_kind, thought[len(tag) :]
                        if not thought:
                            raise OpenLongCoTParseError(at, f"empty thought in node {local}: nothing after {tag}")
                        break
        token = rated.group(1)
        rating = _RATING_OF_TOKEN.get(token) or _rating(token, rated.start(1))
        nodes.append(Node(local, father, kind, thought, rating=rating))
        declared.add(local)
        pos = rated.end()
    end = _WHITESPACE.match(text, pos).end()
    if end != len(text):
        raise _diagnose(text, end, True)
    # A row carries no creation time; "" says so rather than inventing one.
    return Tree(problem=problem, nodes=nodes, created_at=""), root_rated, root_untagged


def _thought(text: str, at: int) -> tuple[str, int]:
    """The thought starting at `at` and the position after its <end_of_thought>."""
    end = text.find(THOUGHT_END, at)
    if end < 0:
        raise _unclosed_thought(at)
    return text[at:end], end + len(THOUGHT_END)


def _unclosed_thought(at: int) -> OpenLongCoTParseError:
    return OpenLongCoTParseError(
        at - len(THOUGHT_START), f"unbalanced {THOUGHT_START}: no {THOUGHT_END} before the end of the row"
    )


# A node id has at most this many digits (a tree shard stores ids as int32). Checked before
# int(): Python refuses to convert a string of more than 4300 digits, and one such row must
# be that row's error, never the whole file's.
_ID_DIGITS = 11


def _too_long_id(head: re.Match[str]) -> None:
    group = 1 if len(head.group(1)) > _ID_DIGITS else 2
    name = "father" if group == 1 else "local"
    raise OpenLongCoTParseError(
        head.start(group), f"{name} id of {len(head.group(group))} digits: node ids are at most {MAX_NODE_ID}"
    )


def _record_error(text: str, head: re.Match[str], father: int, local: int, thought: str, after: int) -> None:
    """Raise the reason a non-root record whose head parsed is still invalid."""
    if father == -1:
        raise OpenLongCoTParseError(
            head.start(1), f"a second root record (father id -1) at local id {local}: a row holds one tree"
        )
    declared = _declared_before(text, head.start())
    if local in declared:
        raise OpenLongCoTParseError(head.start(2), f"duplicate local id {local} (LLaMA-O1's duplicated-id bug)")
    if local < 0:
        raise OpenLongCoTParseError(head.start(2), f"local id {local} is negative")
    if father not in declared:
        raise OpenLongCoTParseError(head.start(1), f"father id {father} of node {local} was not declared before it")
    _check_thought(thought, head.end(), local)
    raise _diagnose_rating(text, after, local)


def _declared_before(text: str, end: int) -> set[int]:
    """Local ids of the records before `end` (only on the error path, so re-scanning is fine)."""
    return {int(h.group(2)) for h in _HEAD.finditer(text, 0, end)}


def _rating(token: str, offset: int) -> str:
    rating = _RATING_OF_TOKEN.get(token)
    if rating is None:
        raise OpenLongCoTParseError(offset, _bad_rating_token(token))
    return rating


def _check_thought(thought: str, at: int, local: int) -> None:
    """Raise when a thought is empty or holds a structural tag (it would not parse back)."""
    if not thought:
        raise OpenLongCoTParseError(at, f"empty thought in node {local}")
    found = _STRUCTURAL.search(thought)
    if found is None:
        return
    tag, offset = found.group(), at + found.start()
    if tag == FATHER_START:
        nested = _HEAD.match(thought, found.start())
        if local == 0 and nested is not None and nested.groups() == ("-1", "0"):
            # The bug wraps a whole root record inside the root's thought.
            raise OpenLongCoTParseError(
                offset, "a record nested inside the thought of node 0 (LLaMA-O1's double-wrapped root bug)"
            )
        # Anything else is a thought left open: the next record was read as part of it.
        raise OpenLongCoTParseError(
            offset,
            f"a record nested inside the thought of node {local}: its thought has no "
            f"{THOUGHT_END} before the next record",
        )
    if tag == MISSPELLED_RATING:
        raise OpenLongCoTParseError(offset, _bad_rating_token(tag))
    if tag in TAGS:
        raise OpenLongCoTParseError(
            offset, f"unbalanced tags: {tag} inside the thought of node {local}, expected {THOUGHT_END} first"
        )
    raise OpenLongCoTParseError(offset, f"unknown structural tag {tag} inside the thought of node {local}")


def _bad_rating_token(token: str) -> str:
    if token == MISSPELLED_RATING:
        return f"LLaMA-O1's misspelling {MISSPELLED_RATING}; expected {RATING_TOKENS['unknown']}"
    return f"unknown rating token {token}; expected one of {', '.join(RATING_TOKENS.values())}"


def _found(text: str, pos: int) -> str:
    """What stands at `pos`, for 'expected X, found Y' messages."""
    if pos >= len(text):
        return "the end of the row"
    tag = _TAG_AT.match(text, pos)
    if tag is not None:
        return tag.group()
    snippet = text[pos : pos + 20]
    return repr(snippet + ("..." if len(text) > pos + 20 else ""))


def _unexpected_tag(text: str, pos: int, expected: str) -> OpenLongCoTParseError:
    """The error for `pos`, where `expected` should stand but does not."""
    found = _STRUCTURAL.match(text, pos)
    if found is not None:
        tag = found.group()
        if tag == MISSPELLED_RATING:
            return OpenLongCoTParseError(pos, _bad_rating_token(tag))
        if tag not in TAGS:
            return OpenLongCoTParseError(pos, f"unknown structural tag {tag}; expected {expected}")
        if tag.startswith("<end_of_") or tag in RATING_TOKENS.values():
            return OpenLongCoTParseError(pos, f"unbalanced {tag}: expected {expected}")
    return OpenLongCoTParseError(pos, f"expected {expected}, found {_found(text, pos)}")


def _diagnose(text: str, pos: int, after_records: bool) -> OpenLongCoTParseError:
    """Why no record starts at `pos` (_HEAD refused it): walk the record head piece by piece."""
    if text.startswith(RATING_START, pos):
        rated = _RATING_PART.match(text, pos)
        if rated is None or rated.group(1) not in _RATING_OF_TOKEN:
            return _diagnose_rating(text, pos, None)
        return OpenLongCoTParseError(pos, f"a second rating part for one record; expected {FATHER_START}")
    if not text.startswith(FATHER_START, pos):
        if after_records and _STRUCTURAL.match(text, pos) is None:
            return OpenLongCoTParseError(
                pos, f"trailing text after the last record: expected {FATHER_START} or the end of the row, "
                f"found {_found(text, pos)}",
            )
        return _unexpected_tag(text, pos, FATHER_START)
    pos += len(FATHER_START)
    pos = _diagnose_id(text, pos, "father id", FATHER_START, FATHER_END)
    if not text.startswith(LOCAL_START, pos):
        return _unexpected_tag(text, pos, LOCAL_START)
    pos = _diagnose_id(text, pos + len(LOCAL_START), "local id", LOCAL_START, LOCAL_END)
    if not text.startswith(THOUGHT_START, pos):
        return _unexpected_tag(text, pos, THOUGHT_START)
    # Unreachable while _HEAD and these checks agree; a plain message if they ever drift.
    return OpenLongCoTParseError(pos, f"malformed record head; expected {_HEAD.pattern!r}")


def _diagnose_id(text: str, pos: int, what: str, start: str, end: str) -> int:
    """Check one id field starting at `pos`; return the position after its end tag."""
    close = text.find("<", pos)
    if close < 0:
        raise OpenLongCoTParseError(pos - len(start), f"unbalanced {start}: no {end} before the end of the row")
    value = text[pos:close]
    if _INTEGER.fullmatch(value) is None:
        raise OpenLongCoTParseError(pos, f"{what} {value!r} is not an integer")
    if not text.startswith(end, close):
        raise _unbalanced(text, close, start, end)
    return close + len(end)


def _unbalanced(text: str, pos: int, start: str, end: str) -> OpenLongCoTParseError:
    return OpenLongCoTParseError(pos, f"unbalanced {start}: expected {end}, found {_found(text, pos)}")


def _diagnose_rating(text: str, pos: int, local: int | None) -> OpenLongCoTParseError:
    """Why the rating part at `pos` is missing or malformed."""
    if not text.startswith(RATING_START, pos):
        node = f" of node {local}" if local is not None else ""
        return _unexpected_tag(text, pos, f"{RATING_START} after the thought{node}")
    pos += len(RATING_START)
    token = _TAG_AT.match(text, pos)
    if token is None:
        return OpenLongCoTParseError(pos, f"expected a rating token, found {_found(text, pos)}")
    if token.group() not in _RATING_OF_TOKEN:
        return OpenLongCoTParseError(pos, _bad_rating_token(token.group()))
    return _unbalanced(text, token.end(), RATING_START, RATING_END)


# -- check ------------------------------------------------------------------------------



def check_openlongcot(text: str) -> list[Finding]:
    """Every problem of one row: parse errors, broken tree invariants, and warnings."""
    findings: list[Finding] = []
    try:
        tree, root_rated, root_untagged = _parse(text)
    except OpenLongCoTParseError as exc:
        findings.append(Finding("error", exc.reason, exc.offset))
    else:
        findings.extend(Finding("error", invariant) for invariant in broken_invariants(tree))
        if root_rated:
            findings.append(
                Finding("warning", "the root record has a rating (LLaMA-O1's code writes one; "
                        "the published OpenLongCoT data does not)")
            )
        if root_untagged:
            findings.append(Finding("warning", f"the root's thought does not start with {KIND_TAGS['problem']}"))
    bad = text.find("\ufffd")
    if bad >= 0:
        findings.append(Finding("warning", REPLACEMENT_WARNING, bad))
    at = lone_surrogate(text)
    if at >= 0:
        findings.append(Finding("error", f"the text {SURROGATE_ERROR}", at))
    return findings


# -- plug-in ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenLongCoTFormat:
    """OpenLongCoT rows in Parquet: `text` (the row), `id`, `problem`, `answer`."""

    name: ClassVar[str] = "openlongcot"
    file_kind: ClassVar[str] = "parquet"
    columns: ClassVar[tuple[str, ...]] = ("text",)
    # Reading rows back into trees (cotgen.io.trees, through the registry): text -> Tree.
    parse_tree: ClassVar = staticmethod(parse_openlongcot)
    parse_error: ClassVar[type[DataError]] = OpenLongCoTParseError

    root_rating: bool = False  # the published dataset has no root rating; LLaMA-O1's code writes one
    separator: str = "\n"  # between records; the published row uses " ", any whitespace parses

    def __post_init__(self) -> None:
        if not self.separator or not self.separator.isspace():
            raise ValueError(f"separator must be whitespace, not {self.separator!r}")

    def export(self, tree: Tree) -> Iterator[dict[str, Any]]:
        text = to_openlongcot(tree, root_rating=self.root_rating, separator=self.separator)
        yield {"text": text, "id": tree.id, "problem": tree.problem, "answer": tree.answer}

    def check(self, row: dict[str, Any]) -> list[Finding]:
        text = row.get("text")
        if text is None:
            return [Finding("error", "missing 'text' (the OpenLongCoT row)")]
        if not isinstance(text, str):
            return [Finding("error", f"'text' is {type(text).__name__}, expected a string")]
        return check_openlongcot(text)
