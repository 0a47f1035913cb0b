"""What every export format is: Tree -> rows, and per-row checks with reasons."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from cotgen.chat_tokens import control_token, describe
from cotgen.errors import CotgenError
from cotgen.tree import Tree

# The warning both seed formats give for U+FFFD: bytes were decoded wrongly before the row was written.
REPLACEMENT_WARNING = "contains U+FFFD (replacement character): text was mis-decoded upstream"


def lone_surrogate(text: str) -> int:
    """Offset of the first lone surrogate (a JSON "\\ud800" escape with no pair), else -1.

    Such text has no UTF-8 form: Parquet, Arrow and the Hub cannot store it, so a file that
    holds one cannot be exported, deduped or pushed. Only text read from JSON can hold one.
    """
    if text.isascii():
        return -1
    found = _SURROGATE.search(text)
    return -1 if found is None else found.start()


_SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_ERROR = "holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which has no UTF-8 form"


class ExportRefused(CotgenError):
    """This tree cannot be written in this format; the reason is counted and the export goes on."""


@dataclass(frozen=True)
class Finding:
    """One problem found in one row by a validator."""

    severity: str  # "error" | "warning"
    message: str
    offset: int | None = None  # character offset in the row's text, where it applies

    def as_json(self, row: int) -> dict[str, Any]:
        out: dict[str, Any] = {"row": row, "severity": self.severity, "message": self.message}
        if self.offset is not None:
            out["offset"] = self.offset
        return out


CONTROL_TOKEN_HINT = "a tokenizer reads it as a turn boundary, so the rendered conversation is not this row"


def control_token_findings(text: str, where: str) -> list[Finding]:
    """An error when `text` (a field of an sft, prm or dpo row) holds a chat-template control token."""
    found = control_token(text)
    if found is None:
        return []
    return [Finding("error", f"{describe(where, found)}: {CONTROL_TOKEN_HINT}", offset=found.start())]


def refuse_control_tokens(texts: dict[str, str]) -> None:
    """Raise ExportRefused when one of `texts` (field name -> text of a row about to be
    exported) holds a chat-template control token: validate would reject the row."""
    for where, text in texts.items():
        found = control_token(text)
        if found is not None:
            raise ExportRefused(describe(where, found))


def stated_problem(tree: Tree) -> str:
    """The tree's problem, stripped, as the row formats write it (sft, prm, dpo,
    processbench); ExportRefused when it is blank: no row can be about it."""
    problem = tree.problem.strip()
    if not problem:
        raise ExportRefused("the problem text is empty")
    return problem


class Format(Protocol):
    """An export format. One class per format, registered in cotgen.formats.FORMATS."""

    name: ClassVar[str]  # the --format value
    file_kind: ClassVar[str]  # "parquet" or "json": how export shards are written
    columns: ClassVar[tuple[str, ...]]  # the fields every row has; validate detects formats by them
    # Options are the fields of the (frozen dataclass) format class, e.g. `journey: bool = False`.

    def export(self, tree: Tree) -> Iterator[dict[str, Any]]:
        """Rows for one tree (zero or more). Raises ExportRefused with a reason."""
        ...

    def check(self, row: dict[str, Any]) -> list[Finding]:
        """Every problem in one row of this format; [] when it is valid."""
        ...
