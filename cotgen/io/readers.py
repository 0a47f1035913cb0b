"""The reader family: rows of one file (Parquet, JSONL, .txt, JSON array, tree shard) batch by batch.

`open_reader` picks the reader for a file's kind; `open_rows` also detects (or checks) the
export format its rows hold. A subclass only reads one file (`batches`); the base `Reader`
owns what every reader shares: row numbering, skip/limit, and how an unreadable row is
reported, so every command says the same thing about the same bad row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from cotgen.errors import DataError, InvalidTree, UsageError, first_line, located
from cotgen.formats import FORMATS, format_class
from cotgen.jsontext import JsonLinesNotArray, parse_json_array

TREES = "trees"  # the format name of tree shards; not an export format
TREE_COLUMNS = ("id", "problem", "nodes")  # the columns that make a Parquet file a tree shard
BATCH_ROWS = 2048  # rows per batch; bounds memory for Parquet, JSONL and .txt alike
MAX_SIZED_ROWS = 8192  # the most rows rows_in_bytes answers, whatever the metadata says
TREE_BATCH_ROWS = 256  # trees per Arrow record batch when streaming; a row holds all its nodes
SNIFF_BYTES = 8192  # how much of a file is looked at to tell its kind
SUFFIX_KINDS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt", ".json": "json"}
BOM = "\ufeff"


@dataclass(frozen=True)
class BadRow:
    """A row that could not even be read (invalid UTF-8, a line that is not JSON).

    It stands in the batch where the row would be, so validate reports it as that row's
    error and export counts it as a skipped row, and both go on with the next one.
    """

    message: str
    offset: int | None = None  # character offset in the row's text, where it applies
    readable: bool = False  # the row was read but is no object (a JSON list on a JSONL line)


@dataclass
class RowBatch:
    """Consecutive rows of one file. `rows[i]` is row `indices[i]`: for .txt and .jsonl the
    row index is the 0-based line number (blank lines are skipped, not rows)."""

    indices: range | list[int]
    rows: list[Any]  # dicts, or BadRow


# on_bad(index, bad): called for a row that cannot be read; None = raise DataError naming it.
BadRowHandler = Callable[[int, BadRow], None]


class Reader:
    """One input file's rows. Subclasses implement `batches` for one kind of file."""

    kind: ClassVar[str] = ""
    by_line: ClassVar[bool] = False  # rows are numbered by line (.jsonl, .txt)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.format: str | None = None  # the export format its rows hold, once detected
        self.columns: tuple[str, ...] = ()  # the first row's keys (the schema for Parquet)

    def batches(self, columns: tuple[str, ...] | list[str] | None = None) -> Iterator[RowBatch]:
        """Rows as dicts (or BadRow), batch by batch. `columns` narrows Parquet reads."""
        raise NotImplementedError

    def where(self, index: int) -> str:
        """How a row is named to a user: `line N` (1-based) for line files, else `row N`."""
        return f"line {index + 1}" if self.by_line else f"row {index}"

    def rows(
        self,
        columns: tuple[str, ...] | list[str] | None = None,
        *,
        skip: int = 0,
        limit: int | None = None,
        on_bad: BadRowHandler | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """(row index, row) for every readable row after the first `skip`, at most `limit`.

        A row that cannot be read goes to `on_bad`, or is a DataError naming file and row.
        """
        seen = 0
        for batch in self.batches(columns):
            for index, row in zip(batch.indices, batch.rows, strict=True):
                if limit is not None and seen >= skip + limit:
                    return
                seen += 1
                if seen <= skip:
                    continue
                if isinstance(row, BadRow):
                    if on_bad is None:
                        raise DataError(located(self.path, index, row.message, row.offset))
                    on_bad(index, row)
                    continue
                yield index, row

    def _first_columns(self) -> tuple[str, ...]:
        """Keys of the first row that is an object; () when none is."""
        for batch in self.batches():
            for row in batch.rows:
                if isinstance(row, dict):
                    return tuple(row)
        return ()


class ParquetReader(Reader):
    kind = "parquet"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            # pre_buffer off: with it on, iter_batches keeps every column chunk it has read
            # (the file's compressed size) until the file is closed, so memory grew with the rows.
            self.parquet = pq.ParquetFile(self.path, pre_buffer=False)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{self.path}: not a readable Parquet file ({first_line(exc)})") from None
        self.columns = tuple(self.parquet.schema_arrow.names)

    def rows_in_bytes(self, nbytes: int) -> int:
        """About how many rows take `nbytes` uncompressed, by the file's own metadata: its
        widest row group's mean row size (a row counted as at least one byte), and at most
        MAX_SIZED_ROWS: a dictionary-encoded column's metadata counts each distinct value
        once, so 50,000 copies of one 20 kB text "take" 20 kB and would come back as one
        1 GB batch."""
        meta = self.parquet.metadata
        widest = max(
            (meta.row_group(i).total_byte_size / max(meta.row_group(i).num_rows, 1) for i in range(meta.num_row_groups)),
            default=1.0,
        )
        return min(MAX_SIZED_ROWS, int(nbytes // max(widest, 1.0)))

    def arrow_batches(self, columns=None, batch_rows: int | None = None) -> Iterator[Any]:
        """The file's Arrow record batches (`batch_rows`, default BATCH_ROWS, rows each); a
        read error is a DataError naming the first row of the batch that failed."""
        import pyarrow as pa

        start = 0
        try:
            for batch in self.parquet.iter_batches(batch_size=batch_rows or BATCH_ROWS, columns=list(columns) if columns else None):
                yield batch
                start += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise DataError(located(self.path, start, f"cannot read Parquet data ({first_line(exc)})")) from None

    def batches(self, columns=None) -> Iterator[RowBatch]:
        start = 0
        for batch in self.arrow_batches(columns):
            if batch.num_columns == 1:
                # The common case (validating OpenLongCoT reads only `text`): one column to
                # Python in one call is several times faster than building dicts row-wise.
                name = batch.schema.names[0]
                rows = [{name: v} for v in batch.column(0).to_pylist()]
            else:
                rows = batch.to_pylist()
            yield RowBatch(range(start, start + len(rows)), rows)
            start += len(rows)


class TreeShardReader(ParquetReader):
    """A Parquet file of trees (`<run>/trees/part-NNNNN.parquet`), read as Tree objects."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.format = TREES
        missing = set(TREE_COLUMNS) - set(self.columns)
        if missing:
            raise DataError(f"{self.path}: not a tree shard: missing column(s) {', '.join(sorted(missing))}")

    def trees(self) -> Iterator[tuple[int, Any]]:
        """(row index, Tree or BadRow) for every row, batch by batch.

        Builds the nodes column-wise (one to_pylist per node field for the whole batch)
        instead of a dict per node as Tree.from_row does: export spends most of its time
        here otherwise. A batch that does not have the canonical shape (a null node list, a
        missing field) goes through Tree.from_row row by row, which names what is wrong.
        """
        import pyarrow as pa

        from cotgen.tree import Node, Tree, TreeStats, parse_config

        node_fields = [f.name for f in fields(Node)]
        # Node fields newer than some shards: a shard written before them lacks them, and
        # reads with their default, as Tree.from_row reads it.
        newer = {"grade_note": None}
        stats_fields = [f.name for f in fields(TreeStats)]
        start = 0
        try:
            for batch in self.parquet.iter_batches(batch_size=TREE_BATCH_ROWS):
                cols = dict(zip(batch.schema.names, batch.columns, strict=True))
                nodes = cols.get("nodes")
                fast = (
                    nodes is not None
                    and pa.types.is_list(nodes.type)
                    and pa.types.is_struct(nodes.type.value_type)
                    and nodes.null_count == 0
                    and {nodes.type.value_type.field(i).name for i in range(nodes.type.value_type.num_fields)}
                    >= set(node_fields) - set(newer)
                    and all(cols.get(c) is not None and cols[c].null_count == 0 for c in ("id", "problem"))
                    # A stats column of another type (a JSON string) is named by Tree.from_row.
                    and ("stats" not in cols or pa.types.is_struct(cols["stats"].type))
                )
                if not fast:
                    for i, row in enumerate(batch.to_pylist()):
                        try:
                            yield start + i, Tree.from_row(row)
                        except InvalidTree as exc:
                            yield start + i, BadRow(str(exc))
                    start += batch.num_rows
                    continue
                flat = nodes.flatten()
                present = {nodes.type.value_type.field(i).name for i in range(nodes.type.value_type.num_fields)}
                values = [flat.field(name).to_pylist() if name in present else [newer[name]] * len(flat)
                          for name in node_fields]
                all_nodes = [Node(*v) for v in zip(*values, strict=True)]
                lengths = nodes.value_lengths().to_pylist()
                n_rows = batch.num_rows
                column = {name: (cols[name].to_pylist() if name in cols else [None] * n_rows)
                          for name in ("id", "problem", "answer", "source", "model", "config", "created_at", "error")}
                stats = _column_stats(cols.get("stats"), n_rows, stats_fields, TreeStats)
                at = 0
                rows = zip(lengths, column["id"], column["problem"], column["answer"], column["source"],
                           column["model"], column["config"], stats, column["created_at"], column["error"], strict=True)
                for i, (n, tid, problem, answer, source, model, config, tstats, created_at, error) in enumerate(rows):
                    try:
                        tree = Tree(
                            id=tid,
                            problem=problem,
                            answer=answer,
                            source=source or "",
                            model=model or "",
                            config=parse_config(config),
                            nodes=all_nodes[at : at + n],
                            stats=tstats,
                            created_at=created_at or "",
                            error=error,
                        )
                    except InvalidTree as exc:
                        yield start + i, BadRow(str(exc))
                    except (TypeError, ValueError) as exc:
                        yield start + i, BadRow(f"not a tree record ({type(exc).__name__}: {exc})")
                    else:
                        yield start + i, tree
                    at += n
                start += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise DataError(located(self.path, start, f"cannot read the tree shard ({first_line(exc)})")) from None


def _column_stats(column: Any, n_rows: int, names: list[str], stats_class: type) -> list[Any]:
    """TreeStats of every row of a batch, built column-wise when the struct is complete."""
    import pyarrow as pa

    if column is None:
        return [stats_class() for _ in range(n_rows)]
    if pa.types.is_struct(column.type) and column.null_count == 0:
        present = {column.type.field(i).name for i in range(column.type.num_fields)}
        if present >= set(names):
            values = [column.field(name).to_pylist() for name in names]
            return [stats_class(*v) for v in zip(*values, strict=True)]
    return [stats_class(**{k: v for k, v in (d or {}).items() if k in names}) for d in column.to_pylist()]


class JsonlReader(Reader):
    """One JSON object per line. Read as bytes and decoded line by line, so that invalid
    UTF-8 or a broken line is the error of that row, and the rest of the file is still read."""

    kind = "jsonl"
    by_line = True

    def batches(self, columns=None) -> Iterator[RowBatch]:
        indices: list[int] = []
        rows: list[Any] = []
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f):
                line = self._strip(raw)
                if not line.strip():
                    continue
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    row: Any = BadRow(f"line {lineno + 1}: {_utf8_error(line, exc.start, ' of the line')}")
                else:
                    row = self._row(text.removeprefix(BOM) if lineno == 0 else text, lineno)
                indices.append(lineno)
                rows.append(row)
                if len(rows) >= BATCH_ROWS:
                    yield RowBatch(indices, rows)
                    indices, rows = [], []
        if rows:
            yield RowBatch(indices, rows)

    @staticmethod
    def _strip(raw: bytes) -> bytes:
        return raw.rstrip(b"\r\n")

    @staticmethod
    def _row(text: str, lineno: int) -> Any:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return BadRow(f"line {lineno + 1}: not valid JSON (char {exc.pos}: {exc.msg})")
        except RecursionError:
            return BadRow(f"line {lineno + 1}: JSON nested too deeply to read")
        if not isinstance(obj, dict):
            return BadRow(f"line {lineno + 1}: a JSON {type(obj).__name__}, expected an object", readable=True)
        return obj


class TxtReader(JsonlReader):
    """OpenLongCoT as published: one row per line, the row is the line (`{"text": line}`)."""

    kind = "txt"

    @staticmethod
    def _strip(raw: bytes) -> bytes:
        return raw.rstrip(b"\n").removesuffix(b"\r")

    @staticmethod
    def _row(text: str, lineno: int) -> Any:
        return {"text": text}


class JsonArrayReader(Reader):
    """A JSON array of records (or `{"data": [...]}`), parsed whole: json has no streaming
    parser here. A .json file holding one object per line is read as JSONL."""

    kind = "json"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        raw = self.path.read_bytes()
        try:
            text = raw.decode("utf-8").removeprefix(BOM)
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise DataError(f"{self.path}: line {line}: {_utf8_error(raw, exc.start)}") from None
        self._lines: JsonlReader | None = None
        try:
            self._records: list[Any] = parse_json_array(text, self.path)
        except JsonLinesNotArray:
            self._lines, self._records = JsonlReader(self.path), []

    def where(self, index: int) -> str:
        return self._lines.where(index) if self._lines else super().where(index)

    def batches(self, columns=None) -> Iterator[RowBatch]:
        if self._lines is not None:
            yield from self._lines.batches(columns)
            return
        for start in range(0, len(self._records), BATCH_ROWS):
            chunk = self._records[start : start + BATCH_ROWS]
            yield RowBatch(range(start, start + len(chunk)), chunk)


def _utf8_error(raw: bytes, at: int, scope: str = "") -> str:
    return f"invalid UTF-8 at byte {at}{scope} (0x{raw[at]:02x})"


READERS: dict[str, type[Reader]] = {r.kind: r for r in (ParquetReader, JsonlReader, TxtReader, JsonArrayReader)}


def open_reader(path: Path | str) -> Reader:
    """The reader for one file, by its suffix or, without a known one, by its first bytes.

    A missing file or a folder is a UsageError; an empty, binary or unreadable file a
    DataError naming it.
    """
    path = Path(path)
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
    kind = SUFFIX_KINDS.get(path.suffix.lower()) or _sniff_kind(path, head)
    nul = head.find(b"\x00")
    if kind != "parquet" and nul >= 0:
        raise DataError(f"{path}: a binary file (NUL byte at byte {nul}), expected {kind} text")
    return READERS[kind](path)


def _sniff_kind(path: Path, head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.removeprefix(BOM.encode()).lstrip()
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        return "jsonl"
    if text.startswith(b"<start_of_father_id>"):
        return "txt"
    if b"\x00" in head:
        raise DataError(f"{path}: a binary file of unknown kind, expected .parquet, .jsonl, .txt or .json")
    raise DataError(f"{path}: cannot tell what this file holds: expected .parquet, .jsonl, .txt or .json")


# -- which format a file holds ----------------------------------------------------------


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


def check_format_name(fmt: str | None) -> None:
    if fmt is not None and fmt != TREES and fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}' (expected one of: {', '.join([TREES, *FORMATS])})")


def open_rows(path: Path | str, fmt: str | None = None) -> Reader:
    """Open one file for reading rows, detecting the format its rows hold unless `fmt` is given.

    A missing file or an unknown format is a UsageError; a file that is empty, binary,
    unreadable or whose columns match no format is a DataError naming it.
    """
    check_format_name(fmt)
    reader = open_reader(path)
    path = reader.path
    if reader.kind == "txt":
        if fmt not in (None, "openlongcot"):
            raise UsageError(f"{path}: a .txt file holds OpenLongCoT rows (one per line), not {fmt}")
        reader.columns, reader.format = ("text",), "openlongcot"
        return reader
    if reader.kind == "json" and reader._lines is None:
        reader.columns = reader._first_columns()
        if fmt is None and not reader.columns:
            # An array with no object in it is still a (broken) Marco file: its rows say why.
            fmt = "marco"
    elif reader.kind in ("jsonl", "json"):
        reader.columns = _first_line_columns(reader, fmt)
    what = "columns" if reader.kind == "parquet" else "keys"
    if fmt is None:
        fmt = match_format(reader.columns)
        if fmt is None:
            raise _no_match(path, reader.columns, what)
    elif reader.kind == "parquet":
        wanted = TREE_COLUMNS if fmt == TREES else format_class(fmt).columns
        missing = [c for c in wanted if c not in reader.columns]
        if missing:
            noun = "tree shard" if fmt == TREES else f"{fmt} file"
            raise DataError(
                f"{path}: not a {noun}: missing column(s) {', '.join(missing)} "
                f"(it has {', '.join(reader.columns) or 'none'})"
            )
    if fmt == TREES and reader.kind == "parquet":
        return TreeShardReader(path)
    reader.format = fmt
    return reader


def _first_line_columns(reader: Reader, fmt: str | None) -> tuple[str, ...]:
    for batch in reader.batches():
        first = batch.rows[0]
        if isinstance(first, BadRow):
            if fmt is None:
                raise DataError(located(reader.path, batch.indices[0], f"cannot detect the format: {first.message}"))
            return ()
        return tuple(first)
    raise DataError(f"{reader.path}: no rows (only blank lines)")


def _no_match(path: Path, columns: tuple[str, ...], what: str) -> DataError:
    expected = "; ".join(
        [f"{', '.join(TREE_COLUMNS)} (tree shard)"]
        + [f"{', '.join(cols)} ({name})" for name, cols in format_columns().items()]
    )
    shown = ", ".join(columns) if columns else "(none)"
    return DataError(f"{path}: {what} {shown} do not match any format: expected {expected}")
