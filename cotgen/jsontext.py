"""JSON text as cotgen reads it: what a value's JSON type is called, and a file's array of
records. Shared by io/ (readers, the run manifest) and formats/ (Marco-o1 files), which
import nothing of each other but the format registry."""

from __future__ import annotations

import json
import sys
from typing import Any

from cotgen.errors import DataError

JSON_TYPES = {dict: "a JSON object", str: "a JSON string", bool: "a JSON boolean", int: "a JSON number",
               float: "a JSON number", type(None): "JSON null"}  # fmt: skip


class JsonLinesNotArray(DataError):
    """JSON text holding several values, one per line: JSONL under another name."""


def parse_json_array(text: str, where: object = None, expected: str = "records") -> list[Any]:
    """The records of a JSON array (or of `{"data": [...]}` / `{"rows": [...]}`), as they are.

    Raises DataError naming `where` when the text is not JSON or holds no array.
    """
    where = str(where) if where is not None else "the input"
    try:
        data = json.loads(text)
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply to read (arrays or objects inside each other "
                        f"about {sys.getrecursionlimit()} levels deep or more)") from None
    except json.JSONDecodeError as exc:
        kind = JsonLinesNotArray if exc.msg == "Extra data" and text.lstrip().startswith("{") else DataError
        raise kind(
            f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}, char {exc.pos}: {exc.msg})"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("data", data.get("rows")), list):
        data = data.get("data", data.get("rows"))
    if not isinstance(data, list):
        raise DataError(f"{where} is {JSON_TYPES.get(type(data), 'not an array')}, expected an array of {expected}")
    return data
