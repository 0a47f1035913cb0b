"""Rows of any supported file (Parquet, JSONL, .txt, JSON array) batch by batch, and which format a file holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotgen.errors import DataError, UsageError, first_line, located
from cotgen.formats import FORMATS, format_class
from cotgen.shards import TREE_COLUMNS, BadRow

TREES = "trees"  # the format name of tree shards; not an export format
BATCH_ROWS = 2048  # rows per batch; bounds memory for Parquet, JSONL and .txt alike
SNIFF_BYTES = 8192  # how much of a text file is looked at to tell it from a binary one
KINDS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt", ".json": "json"}


@dataclass
class RowBatch:
    """Consecutive rows of one file. `rows[i]` is row `indices[i]`: for .txt and .jsonl the
    row index is the 0-based line number (blank lines are skipped, not rows)."""

    indices: range | list[int]
    rows: list[Any]  # dicts, or BadRow


def format_columns() -> dict[str, tuple[str, ...]]:
    """Columns of every registered format whose module exists, in detection order.

    Formats with more columns come first so that a file holding the columns of two
    formats is taken for the more specific one; ties keep the registry's order.
    """
    found: dict[str, tuple[str, ...]] = {}
    for name, target in FORMATS.items():
        try:
            found[name] = tuple(format_class(name).columns)
        except ModuleNotFoundError as exc:
            # A format still being written is simply not detectable yet; any other
            # import failure inside an existing module is a bug and keeps its traceback.
            if exc.name != target.split(":")[0]:
                raise
    return dict(sorted(found.items(), key=lambda kv: -len(kv[1])))


def match_format(columns: list[str] | tuple[str, ...]) -> str | None:
    """The format whose columns are all among `columns` (tree shards first); None if none."""
    have = set(columns)
    if set(TREE_COLUMNS) <= have:
        return TREES
    for name, cols in format_columns().items():
        if set(cols) <= have:
            return name
    return None


def _no_match(path: Path, columns: list[str] | tuple[str, ...], what: str = "columns") -> DataError:
    expected = "; ".join(
        [f"{', '.join(TREE_COLUMNS)} (tree shard)"]
        + [f"{', '.join(cols)} ({name})" for name, cols in format_columns().items()]
    )
    shown = ", ".join(columns) if columns else "(none)"
    return DataError(f"{path}: {what} {shown} do not match any format: expected {expected}")


def _check_columns(path: Path, columns: list[str] | tuple[str, ...], fmt: str) -> None:
    wanted = TREE_COLUMNS if fmt == TREES else format_class(fmt).columns
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(
            f"{path}: not a {fmt} file: missing column(s) {', '.join(missing)} "
            f"(it has {', '.join(columns) or 'none'})"
        )


class RowSource:
    """One input file: its kind (parquet, jsonl, txt, json), its format and its rows.

    Built by `open_rows`, which detects the format or checks the one given; `batches()`
    then streams the rows. Everything except a JSON array is read one batch at a time.
    """

    def __init__(self, path: Path, kind: str, fmt: str, columns: tuple[str, ...], records: list | None = None):
        self.path = path
        self.kind = kind
        self.format = fmt
        self.columns = columns
        self._records = records  # a JSON array is parsed whole; json has no streaming reader here

    def batches(self, columns: tuple[str, ...] | list[str] | None = None) -> Iterator[RowBatch]:
        """Rows as dicts (or BadRow), batch by batch. `columns` narrows Parquet reads."""
        if self.kind == "parquet":
            yield from _parquet_batches(self.path, columns)
        elif self.kind == "json":
            records = self._records or []
            for start in range(0, len(records), BATCH_ROWS):
                chunk = records[start : start + BATCH_ROWS]
                yield RowBatch(range(start, start + len(chunk)), chunk)
        else:
            yield from _line_batches(self.path, self.kind)


def open_rows(path: Path | str, fmt: str | None = None) -> RowSource:
    """Open one file for reading rows, detecting its format unless `fmt` is given.

    A missing file or an unknown format is a UsageError; a file that is empty, binary,
    unreadable or whose columns match no format is a DataError naming it.
    """
    path = Path(path)
    if fmt is not None and fmt != TREES and fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}' (expected one of: {', '.join([TREES, *FORMATS])})")
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, expected a file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if size == 0:
        raise DataError(f"{path}: empty file (0 bytes), expected rows")
    kind = KINDS.get(path.suffix.lower()) or _sniff_kind(path, head)
    if kind == "parquet":
        return _open_parquet(path, fmt)
    if b"\x00" in head:
        nul = head.index(b"\x00")
        raise DataError(f"{path}: a binary file (NUL byte at byte {nul}), expected {kind} text")
    if kind == "json":
        return _open_json(path, fmt)
    return _open_lines(path, kind, fmt)


def _sniff_kind(path: Path, head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.lstrip()
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        return "jsonl"
    if text.startswith(b"<start_of_father_id>"):
        return "txt"
    if b"\x00" in head:
        raise DataError(f"{path}: a binary file of unknown kind, expected .parquet, .jsonl, .txt or .json")
    raise DataError(f"{path}: cannot tell what this file holds: expected .parquet, .jsonl, .txt or .json")


def _open_parquet(path: Path, fmt: str | None) -> RowSource:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        columns = tuple(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    if fmt is None:
        fmt = match_format(columns)
        if fmt is None:
            raise _no_match(path, columns)
    else:
        _check_columns(path, columns, fmt)
    return RowSource(path, "parquet", fmt, columns)


def _parquet_batches(path: Path, columns) -> Iterator[RowBatch]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = 0
    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=list(columns) if columns else None):
            if batch.num_columns == 1:
                # The common case (validating OpenLongCoT reads only `text`): one column to
                # Python in one call is several times faster than building dicts row-wise.
                name = batch.schema.names[0]
                rows = [{name: v} for v in batch.column(0).to_pylist()]
            else:
                rows = batch.to_pylist()
            yield RowBatch(range(start, start + len(rows)), rows)
            start += len(rows)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(located(path, start, f"cannot read Parquet data ({first_line(exc)})")) from None


def _open_json(path: Path, fmt: str | None) -> RowSource:
    from cotgen.formats.marco import loads_marco

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: invalid UTF-8 at byte {exc.start}") from None
    # The Marco reader is the JSON-array reader: it names the file when the text is not an array.
    records = loads_marco(text, path)
    first = next((r for r in records if isinstance(r, dict)), None)
    columns = tuple(first) if first is not None else ()
    if fmt is None:
        # An array with no object in it is still a (broken) Marco file: its rows say why.
        fmt = match_format(columns) if first is not None else "marco"
        if fmt is None:
            raise _no_match(path, columns, what="keys")
    return RowSource(path, "json", fmt, columns, records)


def _open_lines(path: Path, kind: str, fmt: str | None) -> RowSource:
    if kind == "txt":
        # A .txt file is OpenLongCoT as published: one row per line, the row is the line.
        if fmt not in (None, "openlongcot"):
            raise UsageError(f"{path}: a .txt file holds OpenLongCoT rows (one per line), not {fmt}")
        return RowSource(path, "txt", "openlongcot", ("text",))
    columns: tuple[str, ...] = ()
    for batch in _line_batches(path, kind):
        first = batch.rows[0]
        if isinstance(first, BadRow):
            if fmt is None:
                raise DataError(located(path, batch.indices[0], f"cannot detect the format: {first.message}"))
        else:
            columns = tuple(first)
        break
    else:
        raise DataError(f"{path}: no rows (only blank lines)")
    if fmt is None:
        fmt = match_format(columns)
        if fmt is None:
            raise _no_match(path, columns, what="keys")
    return RowSource(path, kind, fmt, columns)


def _line_batches(path: Path, kind: str) -> Iterator[RowBatch]:
    """Lines as rows: .txt lines become {"text": line}, .jsonl lines JSON objects.

    Read as bytes and decoded line by line so that invalid UTF-8 is the error of one
    row, named by its line, and the rest of the file is still read.
    """
    indices: list[int] = []
    rows: list[Any] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f):
            line = raw.rstrip(b"\r\n") if kind == "jsonl" else raw.rstrip(b"\n").removesuffix(b"\r")
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                row: Any = BadRow(f"line {lineno + 1}: invalid UTF-8 at byte {exc.start} of the line")
            else:
                row = {"text": text} if kind == "txt" else _json_object(text, lineno)
            indices.append(lineno)
            rows.append(row)
            if len(rows) >= BATCH_ROWS:
                yield RowBatch(indices, rows)
                indices, rows = [], []
    if rows:
        yield RowBatch(indices, rows)


def _json_object(text: str, lineno: int) -> dict | BadRow:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadRow(f"line {lineno + 1}: not JSON ({exc.msg} at char {exc.pos})")
    except RecursionError:
        return BadRow(f"line {lineno + 1}: JSON nested too deeply to read")
    if not isinstance(obj, dict):
        return BadRow(f"line {lineno + 1}: a JSON {type(obj).__name__}, expected an object")
    return obj


def iter_rows(path: Path | str, fmt: str | None = None) -> Iterator[dict[str, Any]]:
    """Every row of one file as a dict, batch by batch; a row that cannot be read at all
    (invalid UTF-8, a line that is not a JSON object) is a DataError naming it. Callers
    that need row indices use `open_rows(path).batches()` (.txt/.jsonl rows are numbered
    by line)."""
    source = open_rows(path, fmt)
    for batch in source.batches():
        for index, row in zip(batch.indices, batch.rows, strict=True):
            if isinstance(row, BadRow):
                raise DataError(located(source.path, index, row.message))
            yield row




@dataclass(frozen=True)
class DatasetInput:
    """Files of one dataset, as dedupe and push take them: all of one format."""

    format: str  # "trees", "marco" or an export format stored as Parquet
    files: list[Path]
    manifest_from: Path | None  # the first run folder, whose manifest an output copies


def _dataset_file_format(path: Path) -> str:
    source = open_rows(path)
    if source.kind == "parquet" or (source.kind == "json" and source.format == "marco"):
        return source.format
    raise UsageError(
        f"{path}: expected tree shards, Parquet exports or Marco-o1 .json files, "
        f"not {source.format} rows in a .{source.kind} file"
    )


def resolve_dataset_inputs(paths: list[Path], ignore: tuple[str, ...] = ("dedupe.json",)) -> DatasetInput:
    """Expand run folders to shards and export folders to their files; insist on one format."""
    from cotgen.shards import (
        expand_tree_inputs,
        is_run_dir,
        missing_export_shards,
        unfinished_export,
    )

    if not paths:
        raise UsageError("give at least one INPUT (run folder, tree shard or exported file)")
    files: list[Path] = []
    manifest_from = None
    for p in map(Path, paths):
        if p.is_dir() and not is_run_dir(p):
            exported = sorted(f for f in [*p.glob("*.parquet"), *p.glob("*.json")] if f.name not in ignore)
            if not exported:
                raise UsageError(f"{p}: neither a run folder nor a folder of exported files")
            missing = missing_export_shards(exported)
            if missing:
                raise unfinished_export(p, missing)
            files.extend(exported)
            continue
        if p.is_dir() and manifest_from is None:
            manifest_from = p
        files.extend(expand_tree_inputs([p]))
    unique = list(dict.fromkeys(f.resolve() for f in files))
    if not unique:
        raise UsageError(f"{', '.join(map(str, paths))}: no tree shards yet: nothing to read")
    formats = {f: _dataset_file_format(f) for f in unique}
    kinds = sorted(set(formats.values()))
    if len(kinds) > 1:
        listing = "; ".join(f"{f}: {formats[f]}" for f in unique)
        raise UsageError(f"inputs hold more than one format ({', '.join(kinds)}): {listing}")
    return DatasetInput(kinds[0], unique, manifest_from)
