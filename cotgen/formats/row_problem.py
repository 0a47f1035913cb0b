"""Where a row of each export format holds its problem, and the problem text in it: what
`dedupe --on problem` groups by and what `decontaminate` matches against benchmarks."""

from __future__ import annotations

import re
from typing import Any

from cotgen.formats.openlongcot import KIND_TAGS, THOUGHT_END, THOUGHT_START

# The column of a row that holds its problem (with other text, for openlongcot and sft).
PROBLEM_COLUMN = {
    "openlongcot": "text",
    "marco": "instruction",
    "sft": "messages",
    "prm": "prompt",
    "dpo": "prompt",
    "processbench": "problem",
}

_OPENLONGCOT_PROBLEM = re.compile(
    re.escape(THOUGHT_START) + r"\s*" + re.escape(KIND_TAGS["problem"]) + "(.*?)" + re.escape(THOUGHT_END), re.S
)


def problem_text(fmt: str, value: Any) -> Any:
    """The problem in `value`, the PROBLEM_COLUMN of a `fmt` row: an OpenLongCoT text's
    problem record (the whole text when it has none), sft's first user message (None when
    there is none); the other formats' column is the problem as it is. A value not of the
    column's type comes back unchanged: the callers differ in what they make of it
    (decontaminate refuses a non-string, dedupe reads it as text)."""
    if fmt == "openlongcot" and isinstance(value, str):
        m = _OPENLONGCOT_PROBLEM.search(value)
        return m.group(1) if m else value
    if fmt == "sft" and isinstance(value, list):
        users = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"]
        return users[0] if users else None
    return value
