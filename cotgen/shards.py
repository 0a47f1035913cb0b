"""Tree shards on disk: an atomic shard writer, a streaming reader, the run manifest."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cotgen import __version__
from cotgen.errors import DataError, InvalidTree, UsageError, first_line, located
from cotgen.tree import Node, Tree, TreeStats, arrow_schema, utc_now

MANIFEST = "manifest.json"
TREES_DIR = "trees"
SHARD_GLOB = "part-*.parquet"
# Exports are Hub-style: <split>-00000-of-00003.parquet (.json for Marco-o1).
EXPORT_SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_.-]+)-\d{5}-of-\d{5}\.(?P<ext>parquet|json)$")
TREE_BATCH_ROWS = 256  # trees per Arrow record batch when streaming; a row holds all its nodes
TREE_COLUMNS = ("id", "problem", "nodes")  # the columns that make a Parquet file a tree shard


# part-00000.parquet from a local run; part-00000-<tag>.parquet from a Ray worker, whose tag
# is unique to that worker's lifetime, so workers writing to one folder never pick one name.
TREE_SHARD = re.compile(r"^part-(?P<index>\d{5,})(?:-(?P<tag>[A-Za-z0-9]+))?\.parquet$")


def tree_shard_name(index: int, tag: str | None = None) -> str:
    return f"part-{index:05d}.parquet" if tag is None else f"part-{index:05d}-{tag}.parquet"


def export_shard_name(split: str, index: int, count: int, ext: str) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.{ext}"


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
    return set(TREE_COLUMNS) <= names


def iter_tree_rows(path: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Stream the rows of one tree shard as dicts, one record batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = set(TREE_COLUMNS) - set(pf.schema_arrow.names)
    if missing and (columns is None or missing & set(columns)):
        raise DataError(
            f"{path}: not a tree shard: missing column(s) {', '.join(sorted(missing))}"
        )
    for batch in pf.iter_batches(batch_size=TREE_BATCH_ROWS, columns=columns):
        yield from batch.to_pylist()


def iter_trees(paths: Iterable[Path]) -> Iterator[Tree]:
    """Stream trees from shards or run folders; a malformed row is a DataError naming it."""
    for path in expand_tree_inputs(paths):
        for row_index, tree in iter_shard_trees(path):
            if isinstance(tree, BadRow):
                raise DataError(located(path, row_index, tree.message))
            yield tree


@dataclass(frozen=True)
class BadRow:
    """A row that could not even be read (invalid UTF-8, a line that is not JSON).

    It stands in the batch where the row would be, so validate reports it as that row's
    error and export counts it as a skipped row, and both go on with the next one.
    """

    message: str
    offset: int | None = None  # character offset in the row's text, where it applies


def iter_shard_trees(path: Path) -> Iterator[tuple[int, Any]]:
    """(row index, Tree or BadRow) for every row of one tree shard, batch by batch.

    Builds the nodes column-wise (one to_pylist per node field for the whole batch)
    instead of a dict per node as Tree.from_row does: export spends most of its time
    here otherwise. A batch that does not have the canonical shape (a null node list, a
    missing field) goes through Tree.from_row row by row, which names what is wrong.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    node_fields = [f.name for f in fields(Node)]
    stats_fields = [f.name for f in fields(TreeStats)]
    start = 0
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = set(TREE_COLUMNS) - set(pf.schema_arrow.names)
    if missing:
        raise DataError(f"{path}: not a tree shard: missing column(s) {', '.join(sorted(missing))}")
    try:
        for batch in pf.iter_batches(batch_size=TREE_BATCH_ROWS):
            cols = dict(zip(batch.schema.names, batch.columns, strict=True))
            nodes = cols.get("nodes")
            fast = (
                nodes is not None
                and pa.types.is_list(nodes.type)
                and pa.types.is_struct(nodes.type.value_type)
                and nodes.null_count == 0
                and {nodes.type.value_type.field(i).name for i in range(nodes.type.value_type.num_fields)} >= set(node_fields)
                and all(cols.get(c) is not None and cols[c].null_count == 0 for c in ("id", "problem"))
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
            values = [flat.field(name).to_pylist() for name in node_fields]
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
                        config=json.loads(config) if isinstance(config, str) and config else dict(config or {}),
                        nodes=all_nodes[at : at + n],
                        stats=tstats,
                        created_at=created_at or "",
                        error=error,
                    )
                except (TypeError, ValueError) as exc:
                    yield start + i, BadRow(f"not a tree record ({type(exc).__name__}: {exc})")
                else:
                    yield start + i, tree
                at += n
            start += batch.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise DataError(located(path, start, f"cannot read the tree shard ({first_line(exc)})")) from None


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


def write_tree_shard(run_dir: Path, trees: list[Tree], name: str) -> ShardInfo:
    """Write `trees` as `<run>/trees/<name>` atomically, never over an existing file.

    The shard is written under a temporary name, fsynced, then hard-linked to its final name:
    link() fails when the name exists (rename would silently replace it), so two writers
    that pick one name cannot lose each other's trees. FileExistsError then.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([t.to_row() for t in trees], schema=arrow_schema())
    final = Path(run_dir) / TREES_DIR / name
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return ShardInfo(final.name, len(trees), sum(t.error is not None for t in trees))


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
        indexes = (TREE_SHARD.match(p.name) for p in shard_paths(self.run_dir))
        self._next = 1 + max((int(m["index"]) for m in indexes if m), default=-1)

    def write(self, trees: list[Tree]) -> Path | None:
        """Write one shard holding `trees`; returns its path (None when `trees` is empty)."""
        if not trees:
            return None
        while True:
            try:
                info = write_tree_shard(self.run_dir, trees, tree_shard_name(self._next))
                break
            except FileExistsError:  # a Ray worker's or an older run's name: take the next
                self._next += 1
        self._next += 1
        self.record(info)
        return self.run_dir / TREES_DIR / info.name

    def record(self, info: ShardInfo) -> None:
        """Add a shard written elsewhere (by a Ray worker) to the manifest."""
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
