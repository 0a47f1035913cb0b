"""Finding inputs: the files behind the paths a command is given (names: cotgen.io.layout)."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotgen.errors import DataError, UsageError, environment_error
from cotgen.io.atomic import crash_point
from cotgen.io.layout import (
    EXPORT_SHARD,
    EXPORT_SHARD_PARTS,
    MANIFEST,
    TREES_DIR,
    export_files,
    export_shard_name,
    is_run_dir,
    read_manifest,
    shard_paths,
    tree_shard_name,
)
from cotgen.io.runfolder import check_run_finished
from cotgen.stopping import interrupted_as


def expand_inputs(paths: Iterable[Path | str]) -> list[Path]:
    """The files behind the inputs, in order: a run folder becomes its tree shards, an
    export folder its export shards, a file stays itself. Every command resolves its
    inputs here, so all of them say the same thing about the same path; a missing path or
    a folder holding neither is a UsageError, raised before anything is read."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder")
        if not p.is_dir():
            out.append(p)
        elif is_run_dir(p):
            check_run_finished(p)
            out.extend(shard_paths(p))
        else:
            exported = export_files(p)
            if not exported:
                raise UsageError(
                    f"{p}: not a run folder (no {MANIFEST}, no {TREES_DIR}/) and holds no exported shards"
                )
            missing = missing_export_shards(exported)
            if missing:
                raise unfinished_export(p, missing)
            out.extend(exported)
    return out


def missing_export_shards(files: Iterable[Path]) -> list[str]:
    """Names of the shards an export folder should hold but does not: each split's files are
    numbered `-IIIII-of-NNNNN`, and export renames them into place one by one at the end, so
    a crash in between leaves a split with some of its N. Such a folder is unfinished."""
    by_split: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for f in files:
        m = EXPORT_SHARD_PARTS.match(Path(f).name)
        if m:
            by_split.setdefault((m["split"], m["ext"]), []).append((int(m["index"]), int(m["count"])))
    missing = []
    for (split, ext), found in sorted(by_split.items()):
        count = max(c for _, c in found)
        have = {i for i, c in found if c == count}
        missing += [export_shard_name(split, i, count, ext) for i in range(count) if i not in have]
    return missing


def unfinished_export(folder: Path, missing: list[str]) -> DataError:
    return DataError(
        f"{folder}: an unfinished export: {missing[0]}"
        + (f" and {len(missing) - 1} more shard(s)" if len(missing) > 1 else "")
        + " missing (the export stopped while renaming its shards); run the export again with --overwrite"
    )


@dataclass(frozen=True)
class DatasetInput:
    """Files of one dataset, as dedupe and push take them: all of one format."""

    format: str  # "trees", "marco" or an export format stored as Parquet
    files: list[Path]
    manifest_from: Path | None  # the first run folder, whose manifest an output copies


def resolve_dataset_inputs(paths: list[Path]) -> DatasetInput:
    """The inputs' files (as `expand_inputs` finds them), each once; insist on one format."""
    from cotgen.io.readers import open_rows

    if not paths:
        raise UsageError("give at least one INPUT (run folder, tree shard or exported file)")
    files = expand_inputs(paths)
    manifest_from = next((Path(p) for p in paths if is_run_dir(Path(p))), None)
    unique = list(dict.fromkeys(f.resolve() for f in files))
    if not unique:
        raise UsageError(f"{', '.join(map(str, paths))}: no tree shards yet: nothing to read")
    formats: dict[Path, str] = {}
    for f in unique:
        reader = open_rows(f)
        if not (reader.kind == "parquet" or (reader.kind == "json" and reader.format == "marco")):
            raise UsageError(
                f"{f}: expected tree shards, Parquet exports or Marco-o1 .json files, "
                f"not {reader.format} rows in a .{reader.kind} file"
            )
        formats[f] = reader.format
    kinds = sorted(set(formats.values()))
    if len(kinds) > 1:
        listing = "; ".join(f"{f}: {formats[f]}" for f in unique)
        raise UsageError(f"inputs hold more than one format ({', '.join(kinds)}): {listing}")
    return DatasetInput(kinds[0], unique, manifest_from)


# -- a new folder made from inputs (dedupe, decontaminate) ------------------------------


def check_new_output(out: Path, inp: DatasetInput) -> None:
    """Refuse an --out that is a dangling link, cannot be followed, holds one of the inputs,
    or is a non-empty folder: a command that rewrites its inputs into `out` starts clean."""
    from cotgen.errors import first_line, refuse_link_to_nowhere

    refuse_link_to_nowhere(out)
    try:
        resolved = out.resolve()
    except (OSError, RuntimeError) as exc:  # a loop further up the path
        raise UsageError(f"--out {out}: cannot follow the path ({first_line(exc)})") from None
    for f in inp.files:
        if resolved == f.resolve() or resolved in f.resolve().parents:
            raise UsageError(f"--out {out} holds the input {f}: write the result to a new folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} exists and is not an empty folder")


@contextmanager
def staged_output(out: Path, doing: str) -> Iterator[Path]:
    """A hidden folder beside `out` to build the output in, renamed to `out` when the block
    ends without error: `out` (new, or an empty folder: check_new_output) appears whole or
    not at all (a full disk, a crash), and a failure leaves no staging folder behind. An
    OSError becomes the environment error that names `out` and what was being done
    (`doing`, e.g. "write the dedupe output")."""
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    with interrupted_as(f"interrupted ({{signal}}): nothing written to {out}, its staging folder removed"), _removed(staging):
        try:
            staging.mkdir(parents=True)
            crash_point("staging-made")
            yield staging
            if out.is_dir():
                out.rmdir()  # empty (checked before): the rename needs it gone
            os.rename(staging, out)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and os.fspath(out) in (exc.filename, exc.filename2):
                # `out` was empty at the start; a run or an export began writing there since.
                # rmdir and rename never remove a folder that holds files: theirs stay.
                raise UsageError(f"--out {out}: another writer (a run, an export) put files there meanwhile; "
                                 f"nothing was written: choose another --out") from None
            known = environment_error(exc, doing, where=out)
            if known is None:
                raise
            raise known from None


@contextmanager
def _removed(staging: Path) -> Iterator[None]:
    """`staging` is gone when the block is left, whatever ends it."""
    try:
        yield
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def output_manifest(inp: DatasetInput, shards: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest of a run folder made from `inp`: the first input run's, with this
    output's `shards` ({name, rows, failed}) and the counts they add up to. The caller adds
    what it did and writes it."""
    manifest = read_manifest(inp.manifest_from) if inp.manifest_from else {}
    manifest["shards"] = shards
    manifest["counts"] = {"trees": sum(s["rows"] for s in shards), "failed": sum(s["failed"] for s in shards)}
    return manifest


def renumbered_names(inp: DatasetInput) -> list[str]:
    """The output name of each input file: tree shards renumbered part-NNNNN under trees/;
    exports keep their split, renumbered split-NNNNN-of-NNNNN."""
    from cotgen.io.readers import TREES

    if inp.format == TREES:
        return [f"{TREES_DIR}/{tree_shard_name(i)}" for i in range(len(inp.files))]
    ext = "json" if inp.format == "marco" else "parquet"
    splits = [m.group("split") if (m := EXPORT_SHARD.match(f.name)) else "train" for f in inp.files]
    seen: dict[str, int] = {}
    names = []
    for split in splits:
        names.append(export_shard_name(split, seen.get(split, 0), splits.count(split), ext))
        seen[split] = seen.get(split, 0) + 1
    return names
