"""Writing: the tree shard writer with its run manifest, the export shard writers (files
are written as cotgen.io.atomic says)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotgen import __version__
from cotgen.errors import DataError
from cotgen.io.atomic import atomic_file, crash_point, open_new, write_json_atomic
from cotgen.io.layout import (
    MANIFEST,
    TREE_SHARD,
    TREES_DIR,
    read_manifest,
    shard_paths,
    temporary_name,
    tree_shard_name,
)
from cotgen.tree import Tree, arrow_schema, utc_now

BATCH_ROWS = 2048  # rows per exported Parquet row group at most; bounds export memory
BATCH_BYTES = 16 * 2**20  # text bytes per exported row group at most, for the same reason


def _grader_id() -> str:
    from cotgen.verify import grader_id

    return grader_id()


@dataclass
class ShardInfo:
    name: str
    rows: int
    failed: int


class TreeShardWriter:
    """Writes trees to `<run>/trees/part-NNNNN.parquet`, each shard atomically, and keeps
    `<run>/manifest.json` in step with the shards that exist.

    A shard is written under a temporary name and renamed when complete, so a crash never
    leaves a half-written shard under a final name; the manifest is rewritten after each.
    """

    def __init__(self, run_dir: Path, settings: dict[str, Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        (self.run_dir / TREES_DIR).mkdir(parents=True, exist_ok=True)
        self.manifest = read_manifest(self.run_dir)
        self.manifest.setdefault("cotgen_version", __version__)
        self.manifest.setdefault("created_at", utc_now())
        # The grader of this run's verdicts, which exports publish as `verified_by`.
        self.manifest.setdefault("verified_by", _grader_id())
        if settings is not None:
            self.manifest["settings"] = settings
        existing = shard_paths(self.run_dir)
        indexes = (TREE_SHARD.match(p.name) for p in existing)
        self._next = 1 + max((int(m["index"]) for m in indexes if m), default=-1)
        # A run killed between a shard's rename and the manifest's rewrite left a complete
        # shard the manifest does not list: count it now, so the counts match the shards.
        listed = {s["name"] for s in self.manifest.get("shards", [])}
        for path in existing:
            if path.name not in listed:
                self.record(_shard_info(path))

    def write(self, trees: list[Tree]) -> Path | None:
        """Write one shard holding `trees`; returns its path (None when `trees` is empty)."""
        if not trees:
            return None
        while True:
            try:
                info = write_tree_shard(self.run_dir, trees, tree_shard_name(self._next))
                break
            except FileExistsError:  # a name a Ray worker or another writer took: the next
                self._next += 1
        self._next += 1
        self.record(info)
        crash_point("manifest-written")
        return self.run_dir / TREES_DIR / info.name

    def record(self, info: ShardInfo) -> None:
        """Add a shard to the manifest: one this writer wrote, or one a Ray worker wrote."""
        shards = [s for s in self.manifest.get("shards", []) if s["name"] != info.name]
        shards.append({"name": info.name, "rows": info.rows, "failed": info.failed})
        self.manifest["shards"] = sorted(shards, key=lambda s: s["name"])
        self._record_counts()

    def _record_counts(self) -> None:
        self.manifest["counts"] = {
            "trees": sum(s["rows"] for s in self.manifest["shards"]),
            "failed": sum(s["failed"] for s in self.manifest["shards"]),
        }
        self.manifest["cotgen_version"] = __version__
        self.manifest["updated_at"] = utc_now()
        write_json_atomic(self.run_dir / MANIFEST, self.manifest)

    def reconciled(self, shards: list[dict[str, Any]], damaged: Sequence[dict[str, str]] = (), **fields: Any) -> None:
        """Replace the manifest's shard list with what is on disk (runfolder.reconcile), and
        add the shards it moved aside as damaged to `damaged_shards` (kept across runs)."""
        if damaged:
            at = utc_now()
            self.manifest["damaged_shards"] = [*self.manifest.get("damaged_shards", []),
                                               *({**d, "moved_at": at} for d in damaged)]
        self.manifest["shards"] = sorted(shards, key=lambda s: s["name"])
        self.manifest["counts"] = {
            "trees": sum(s["rows"] for s in shards),
            "failed": sum(s["failed"] for s in shards),
        }
        self.update_manifest(**fields)

    def drop_retried_failures(self) -> int:
        """Remove failed tree records whose problem now also has a good tree (a rerun retried
        it), rewriting each shard concerned atomically; returns how many were removed. Run at
        the start and the end of a run, so a crash between the good write and this one is
        mended by the next run and the folder never keeps two trees of one id for long.
        Reads only the id and error columns unless a shard has a record to drop."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        good: set[str] = set()
        failed: dict[Path, set[str]] = {}
        for path in shard_paths(self.run_dir):
            table = pq.read_table(path, columns=["id", "error"])
            errors = table["error"].to_pylist()
            for tid, error in zip(table["id"].to_pylist(), errors, strict=True):
                if error is None:
                    good.add(tid)
                else:
                    failed.setdefault(path, set()).add(tid)
        removed = 0
        for path, ids in failed.items():
            retried = ids & good
            if not retried:
                continue
            table = pq.read_table(path)
            superseded = pc.and_(pc.is_valid(table["error"]),
                                 pc.is_in(table["id"], value_set=pa.array(sorted(retried), type=pa.string())))
            kept = table.filter(pc.invert(superseded))
            if kept.num_rows:
                with atomic_file(path) as f:
                    pq.write_table(kept, f, compression="zstd")
                self.record(_shard_info(path))
            else:
                path.unlink()
                self.manifest["shards"] = [s for s in self.manifest.get("shards", []) if s["name"] != path.name]
                self._record_counts()
            removed += table.num_rows - kept.num_rows
        return removed

    def update_manifest(self, **fields: Any) -> None:
        """Merge `fields` into the manifest and rewrite it atomically."""
        self.manifest.update(fields)
        self.manifest["updated_at"] = utc_now()
        write_json_atomic(self.run_dir / MANIFEST, self.manifest)


def write_tree_shard(run_dir: Path, trees: list[Tree], name: str) -> ShardInfo:
    """Write `trees` as `<run>/trees/<name>` atomically, never over an existing file.

    Like `atomic_file`, but the complete temporary file is hard-linked to its final name
    instead of renamed: link() fails when the name exists (rename would silently replace
    it), so two writers that pick one name cannot lose each other's trees. FileExistsError
    then, and nothing is left behind.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([t.to_row() for t in trees], schema=arrow_schema())
    final = Path(run_dir) / TREES_DIR / name
    tmp = temporary_name(final)
    try:
        with open_new(tmp) as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        crash_point("shard-tmp-written")
        os.link(tmp, final)
        crash_point("shard-renamed")
    finally:
        tmp.unlink(missing_ok=True)
    return ShardInfo(final.name, len(trees), sum(t.error is not None for t in trees))


def _shard_info(path: Path) -> ShardInfo:
    import pyarrow.parquet as pq

    errors = pq.read_table(path, columns=["error"]).column("error")
    return ShardInfo(path.name, len(errors), len(errors) - errors.null_count)


# -- export shards ----------------------------------------------------------------------


def _text_size(value: Any) -> int:
    """Rough bytes of a row value: enough to bound a row group's memory."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_size(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_text_size(v) for v in value)
    return 8


class ExportShardWriter:
    """Rows of one export into shards of at most `limit` bytes, under temporary names;
    `close()` returns them in order, for the caller to rename once their count is known."""

    ext = ""

    def __init__(self, out: Path, split: str, limit: int) -> None:
        self.out, self.split, self.limit = out, split, limit
        self.paths: list[Path] = []

    def add(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> list[Path]:
        raise NotImplementedError

    def _new_path(self) -> Path:
        path = self.out / f".{self.split}-{len(self.paths):05d}.{self.ext}.tmp-{os.getpid()}"
        self.paths.append(path)
        return path

    def discard(self) -> None:
        """Remove every temporary shard. On a full disk closing a file (its footer, its
        fsync) fails too, so the open file is dropped unwritten, whatever goes wrong."""
        try:
            self._abandon_file()
        finally:
            for p in self.paths:
                p.unlink(missing_ok=True)

    def _abandon_file(self) -> None:
        handle = getattr(self, "file", None)
        writer = getattr(self, "writer", None)
        if writer is not None and getattr(writer, "is_open", False):
            # A dropped pyarrow ParquetWriter closes itself when collected, writing its
            # footer to the file closed below: an "Exception ignored" traceback on stderr.
            writer.is_open = False
        self.writer = self.file = None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()

    def _close_file(self) -> None:
        raise NotImplementedError


class ParquetShardWriter(ExportShardWriter):
    ext = "parquet"

    def __init__(self, out: Path, split: str, limit: int) -> None:
        super().__init__(out, split, limit)
        self.rows: list[dict[str, Any]] = []
        self.buffered = 0
        self.batch_bytes = max(1, min(BATCH_BYTES, limit // 8))
        self.schema = None
        self.file = None
        self.writer = None
        self.row_groups = 0
        self.ratio = 1.0  # bytes on disk per text byte, learned from the row groups written

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        for v in row.values():
            self.buffered += len(v) if type(v) is str else _text_size(v)
        if len(self.rows) >= BATCH_ROWS or self.buffered >= self.batch_bytes:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        try:
            if self.schema is None:
                table = pa.Table.from_pylist(self.rows)
                # A column that is all null in the first batch (no answer yet) would be
                # typed null for every shard; text is the only sensible type for it.
                self.schema = pa.schema(
                    [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
                )
            table = pa.Table.from_pylist(self.rows, schema=self.schema)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DataError(f"export: rows do not fit one table schema ({exc})") from None
        # Next row group's size guessed from the last one's compression, with a margin.
        expected = 1.25 * self.buffered * self.ratio
        footer = 1024 + 128 * len(self.schema) * (self.row_groups + 2)
        if self.writer is not None and self.file.tell() + expected + footer > self.limit:
            self._close_file()
        if self.writer is None:
            self.file = open_new(self._new_path())
            # No column statistics: min/max of long texts would bloat every footer.
            self.writer = pq.ParquetWriter(self.file, self.schema, compression="zstd", write_statistics=False)
            self.row_groups = 0
        before = self.file.tell()
        self.writer.write_table(table)
        self.row_groups += 1
        self.ratio = (self.file.tell() - before) / max(1, self.buffered)
        self.rows, self.buffered = [], 0

    def _close_file(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        self.writer = self.file = None

    def close(self) -> list[Path]:
        self._flush()
        self._close_file()
        return list(self.paths)


class JsonShardWriter(ExportShardWriter):
    """A JSON array per shard, byte for byte what json.dumps(records, indent=4) writes and a
    newline (Marco-o1's layout: formats.marco.dumps_marco), but streamed record by record."""

    ext = "json"

    def __init__(self, out: Path, split: str, limit: int) -> None:
        super().__init__(out, split, limit)
        self.file = None
        self.size = 0

    def add(self, row: dict[str, Any]) -> None:
        # json.dumps([r], indent=4) is "[\n" + the record indented one level + "\n]".
        chunk = json.dumps([row], ensure_ascii=False, indent=4)[2:-2].encode("utf-8")
        if self.file is not None and self.size + 2 + len(chunk) + 3 > self.limit:
            self._close_file()
        if self.file is None:
            self.file = open_new(self._new_path())
            self.file.write(b"[\n")
            self.size = 2
        else:
            self.file.write(b",\n")
            self.size += 2
        self.file.write(chunk)
        self.size += len(chunk)

    def _close_file(self) -> None:
        if self.file is not None:
            self.file.write(b"\n]\n")
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        self.file = None

    def close(self) -> list[Path]:
        self._close_file()
        return list(self.paths)
