"""Export: trees (run folders, tree shards, OpenLongCoT and Marco-o1 files) -> Hub-style shards of one format."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotgen.errors import (
    UsageError,
    environment_error,
    reason_key,
    refuse_link_to_nowhere,
)
from cotgen.formats import ExportRefused, Format, provenance
from cotgen.io.atomic import crash_point, open_new, write_json_atomic
from cotgen.io.layout import (
    EXPORT_SHARD,
    MANIFEST,
    TREES_DIR,
    export_shard_name,
    read_manifest,
    temporary_name,
)
from cotgen.io.readers import Reader
from cotgen.io.runfolder import RunLock
from cotgen.io.trees import iter_located_trees, tree_inputs
from cotgen.io.writers import JsonShardWriter, ParquetShardWriter
from cotgen.stopping import held_signals, interrupted_as
from cotgen.tree import Tree, broken_invariants

DEFAULT_MAX_SHARD_SIZE = "500MB"
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # fmt: skip
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", re.I)


def parse_size(text: str | int) -> int:
    """'500MB' -> 500_000_000 (decimal units as the Hub uses; KiB/MiB/GiB are binary); bytes if bare."""
    if isinstance(text, int):
        size = text
    else:
        m = _SIZE.fullmatch(text)
        if m is None:
            raise UsageError(f"--max-shard-size: cannot read '{text}' as a size (e.g. 500MB, 1GB, 20KB, 100000)")
        size = int(float(m.group(1)) * _UNITS[(m.group(2) or "").upper()])
    if size < 1024:
        raise UsageError(f"--max-shard-size: {size} bytes is too small (at least 1KB: a shard needs room for its footer)")
    return size


@dataclass
class ExportSummary:
    """What an export did. Every tree that made no row is in `skipped`, by reason."""

    format: str
    out: str
    split: str
    shards: list[str] = field(default_factory=list)
    rows_written: int = 0
    trees_read: int = 0
    trees_exported: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> trees
    examples: dict[str, str] = field(default_factory=dict)  # reason -> the first tree or row it hit

    def skip(self, reason: str, where: str) -> None:
        key = reason_key(reason)
        self.skipped[key] += 1
        self.examples.setdefault(key, f"{where}: {reason}"[:500])

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "out": self.out,
            "split": self.split,
            "shards": self.shards,
            "rows_written": self.rows_written,
            "trees_read": self.trees_read,
            "trees_exported": self.trees_exported,
            "trees_skipped": sum(self.skipped.values()),
            "skipped": dict(self.skipped.most_common()),
            "examples": self.examples,
        }


def export(
    inputs: Iterable[Path | str],
    format: Format,
    out: Path | str,
    *,
    split: str = "train",
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    overwrite: bool = False,
) -> ExportSummary:
    """Export every tree of `inputs` to `<out>/<split>-0000i-of-0000N.<parquet|json>`.

    Shards are written under temporary names and renamed once N is known, so a crash
    never leaves a shard under a final name. Failed trees, invalid trees, trees the
    format refuses and unreadable input rows are skipped and counted by reason.

    Ctrl-C and SIGTERM (whatever SIGINT's disposition: cotgen.stopping) remove the
    temporary files and raise Interrupted (exit 130 / 143); `out` keeps what it held. A
    signal during the final renames waits for them (milliseconds): the export then completes.
    """
    out = Path(out)
    limit = parse_size(max_shard_size)
    if not re.fullmatch(r"[A-Za-z0-9_.]+", split):
        raise UsageError(f"--split '{split}': use letters, digits, '_' or '.' (it names the shard files)")
    readers = tree_inputs([Path(p) for p in inputs])  # checked before anything is written
    _refuse_non_folder(out)
    # One writer per folder, as for runs: a second export into `out` (or a run writing there)
    # is refused, naming the holder. Two at once both passed the "split exists" check.
    published: list[ExportSummary] = []  # set once the shards have their names

    def interrupted() -> str:
        if published:  # the signal came between the renames and the lock's release
            return f"export interrupted ({{signal}}) as it finished: {out} holds the new export " \
                   f"({len(published[0].shards)} shard(s))"
        return f"export interrupted ({{signal}}): no shard written, its temporary files removed; " \
               f"{out} holds what it held before"

    with interrupted_as(interrupted), RunLock(out):
        return _export_locked(readers, format, out, split, limit, overwrite, published)


def _export_locked(readers, format: Format, out: Path, split: str, limit: int, overwrite: bool,
                   published: list[ExportSummary]) -> ExportSummary:
    _remove_stale_temporaries(out)
    old_shards = _prepare_out(out, split, overwrite)
    summary = ExportSummary(format=format.name, out=str(out), split=split)
    sink = (JsonShardWriter if format.file_kind == "json" else ParquetShardWriter)(out, split, limit)
    prov = _ProvenanceSidecars(out, split, format.name)
    try:
        try:
            summary = _export_rows(readers, format, summary, sink, prov)
            temporary = sink.close()
            prov.close()
            with held_signals(deliver=False):  # the old shards go and the new ones get their names together
                for old in old_shards:
                    old.unlink(missing_ok=True)
                n = len(temporary)
                for i, tmp in enumerate(temporary):
                    final = out / export_shard_name(split, i, n, sink.ext)
                    os.replace(tmp, final)
                    summary.shards.append(final.name)
                prov.publish()
                published.append(summary)
            crash_point("export-published")
        except OSError as exc:
            known = environment_error(exc, "write the export", where=out)
            if known is None:
                raise
            raise known from None
    except BaseException:
        with held_signals(deliver=False):  # a second Ctrl-C or SIGTERM must not cut the clean-up short
            sink.discard()
            prov.discard()
        raise
    return summary


def _export_rows(readers, format, summary: ExportSummary, sink, prov: _ProvenanceSidecars) -> ExportSummary:
    """Every tree of the inputs through the format into `sink`, skips counted by reason;
    each row gets its provenance (cotgen.formats.provenance), in the row or in `prov`."""
    def unreadable(reason: str, where: str) -> None:
        summary.trees_read += 1
        summary.skip(reason, where)

    # Tree ids already written: an output holds each tree once, as validate demands, even
    # when two inputs (or two rows of one) carry the same tree.
    exported_ids: set[str] = set()
    for tree, where, verified_by in _trees_with_grader(readers, unreadable):
        summary.trees_read += 1
        reason = _skip_reason(tree)
        if reason is None and tree.id in exported_ids:
            reason = "duplicate tree id: an earlier input row holds the same tree"
        if reason is None:
            try:
                rows = list(format.export(tree))
            except ExportRefused as exc:
                reason = f"refused by {format.name}: {exc}"
            else:
                if not rows:
                    reason = f"{format.name} made no row from this tree"
        if reason is not None:
            summary.skip(reason, where)
            continue
        summary.trees_exported += 1
        exported_ids.add(tree.id)
        for row in rows:
            fields = provenance.row_provenance(tree, row, verified_by)
            # A byte-exact format's row stays as it is: its provenance goes to the sidecar only.
            sink.add(dict(row) if prov.exact else {**row, **fields})
            prov.add(summary.rows_written, tree.id, fields)
            summary.rows_written += 1
        crash_point("export-tree-written")
    return summary


def _trees_with_grader(readers: list[Reader], unreadable):
    """(tree, where, verified_by) for every tree of the inputs. verified_by is the grader
    the tree's run recorded in its manifest; trees from elsewhere were graded by cotgen's
    one grader, math-verify, at a version nothing recorded."""
    for reader in readers:
        verified_by = _recorded_grader(reader.path)
        for tree, where in iter_located_trees([reader], on_skip=unreadable):
            yield tree, where, verified_by


def _recorded_grader(path: Path) -> str:
    if path.parent.name == TREES_DIR and (path.parent.parent / MANIFEST).is_file():
        recorded = read_manifest(path.parent.parent).get("verified_by")
        if isinstance(recorded, str) and recorded:
            return recorded
    return "math-verify"


class _ProvenanceSidecars:
    """`_<split>.provenance.json` (the summary, every format) and, for the byte-exact formats,
    `_<split>.provenance.jsonl` (each row's provenance, one line per row in shard order).
    Written under temporary names and renamed after the shards, as the shards are."""

    def __init__(self, out: Path, split: str, format: str) -> None:
        self.out, self.split = out, split
        self.exact = format in provenance.EXACT_FORMATS
        self.summary = provenance.Summary(format, split)
        self.rows_path = out / provenance.rows_name(split)
        self._tmp = temporary_name(self.rows_path) if self.exact else None
        self._file = open_new(self._tmp, "w") if self._tmp else None

    def add(self, row: int, tree_id: str, fields: dict[str, Any]) -> None:
        self.summary.add(fields)
        if self._file is not None:
            self._file.write(json.dumps({"row": row, "id": tree_id, **fields}, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._tmp.unlink(missing_ok=True)

    def publish(self) -> None:
        if self._tmp is not None:
            os.replace(self._tmp, self.rows_path)
        else:
            self.rows_path.unlink(missing_ok=True)  # a previous exact export's, now stale
        write_json_atomic(self.out / provenance.summary_name(self.split), self.summary.as_json())


def _skip_reason(tree: Tree) -> str | None:
    if tree.error is not None:
        return f"failed tree: {tree.error}"
    broken = broken_invariants(tree)
    if broken:
        return f"invalid tree: {broken[0]}"
    return None


def _refuse_non_folder(out: Path) -> None:
    refuse_link_to_nowhere(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, expected a folder")


# What ExportShardWriter names a shard while it is written: `.<split>-NNNNN.<ext>.tmp-<pid>`,
# and the provenance sidecars': `._<split>.provenance.json[l].tmp-<pid>`.
_EXPORT_TEMPORARY = re.compile(
    r"^\.(?:[A-Za-z0-9_.-]+-\d{5}\.(?:parquet|json)|_[A-Za-z0-9_.]+\.provenance\.jsonl?)\.tmp-\d+$")


def _remove_stale_temporaries(out: Path) -> None:
    """Shards and sidecars an export killed mid-write left (SIGKILL, a power cut). Only a
    writer holding the folder's lock writes there, and this one does, so none is live."""
    for path in out.iterdir():
        if _EXPORT_TEMPORARY.match(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)


def _prepare_out(out: Path, split: str, overwrite: bool) -> list[Path]:
    """Create `out`; return the shards of `split` already there (to replace) or refuse them."""
    _refuse_non_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    existing = sorted(p for p in out.iterdir() if (m := EXPORT_SHARD.match(p.name)) and m["split"] == split)
    if existing and not overwrite:
        names = ", ".join(p.name for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise UsageError(f"--out {out}: already holds {split} shards ({names}); pass --overwrite to replace them")
    return existing
