"""Tree shards on disk: an atomic shard writer, a streaming reader, the run manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotgen import __version__
from cotgen.errors import DataError, InvalidTree, UsageError, located
from cotgen.tree import Tree, arrow_schema, utc_now

MANIFEST = "manifest.json"
TREES_DIR = "trees"
SHARD_GLOB = "part-*.parquet"
READ_BATCH_ROWS = 256  # trees per Arrow record batch when streaming; bounds reader memory


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temporary name in the same folder, fsync, then rename over `path`."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / MANIFEST).is_file() or (path / TREES_DIR).is_dir())


def shard_paths(run_dir: Path) -> list[Path]:
    """The complete shards of a run, in order. Temporary files never match the glob."""
    return sorted((Path(run_dir) / TREES_DIR).glob(SHARD_GLOB))


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the run manifest ({exc})") from None


def is_tree_shard(path: Path) -> bool:
    """True when `path` is a Parquet file whose columns are those of a tree shard."""
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except Exception:
        return False
    return {"id", "problem", "nodes"} <= names


def iter_tree_rows(path: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Stream the rows of one tree shard as dicts, one record batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = {"id", "problem", "nodes"} - set(pf.schema_arrow.names)
    if missing and (columns is None or missing & set(columns)):
        raise DataError(
            f"{path}: not a tree shard: missing column(s) {', '.join(sorted(missing))}"
        )
    for batch in pf.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns):
        yield from batch.to_pylist()


def iter_trees(paths: Iterable[Path]) -> Iterator[Tree]:
    """Stream trees from shards or run folders; a malformed row is a DataError naming it."""
    for path in expand_tree_inputs(paths):
        for row_index, row in enumerate(iter_tree_rows(path)):
            try:
                yield Tree.from_row(row)
            except InvalidTree as exc:
                raise DataError(located(path, row_index, str(exc))) from None


def expand_tree_inputs(paths: Iterable[Path]) -> list[Path]:
    """Run folders become their shards; files stay as they are. Missing paths are usage errors."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder")
        if p.is_dir():
            shards = shard_paths(p)
            if not shards and not is_run_dir(p):
                raise UsageError(f"{p}: not a run folder (no {MANIFEST} and no {TREES_DIR}/)")
            out.extend(shards)
        else:
            out.append(p)
    return out


def finished_tree_ids(run_dir: Path) -> set[str]:
    """Ids of every tree already in a complete shard of the run (reads only the id column)."""
    ids: set[str] = set()
    for path in shard_paths(run_dir):
        for row in iter_tree_rows(path, columns=["id"]):
            ids.add(row["id"])
    return ids


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
        if settings is not None:
            self.manifest["settings"] = settings
        existing = shard_paths(self.run_dir)
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in existing), default=-1)
        self._schema = arrow_schema()

    def write(self, trees: list[Tree]) -> Path | None:
        """Write one shard holding `trees`; returns its path (None when `trees` is empty)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not trees:
            return None
        table = pa.Table.from_pylist([t.to_row() for t in trees], schema=self._schema)
        final = self.run_dir / TREES_DIR / f"part-{self._next:05d}.parquet"
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self._next += 1
        self._record(ShardInfo(final.name, len(trees), sum(t.error is not None for t in trees)))
        return final

    def _record(self, info: ShardInfo) -> None:
        shards = [s for s in self.manifest.get("shards", []) if s["name"] != info.name]
        shards.append({"name": info.name, "rows": info.rows, "failed": info.failed})
        self.manifest["shards"] = sorted(shards, key=lambda s: s["name"])
        self.manifest["counts"] = {
            "trees": sum(s["rows"] for s in self.manifest["shards"]),
            "failed": sum(s["failed"] for s in self.manifest["shards"]),
        }
        self.manifest["cotgen_version"] = __version__
        self.manifest["updated_at"] = utc_now()
        write_json_atomic(self.run_dir / MANIFEST, self.manifest)

    def update_manifest(self, **fields: Any) -> None:
        """Merge `fields` into the manifest and rewrite it atomically."""
        self.manifest.update(fields)
        self.manifest["updated_at"] = utc_now()
        write_json_atomic(self.run_dir / MANIFEST, self.manifest)
