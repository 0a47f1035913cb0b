"""The layout of a run folder and of an export folder: file names, globs, and reading the
run manifest. Nothing here writes; cotgen.io.runfolder says who may write a run folder and
how, cotgen.io.atomic how a file is written.

    <run>/manifest.json                  the run's settings, shard list, counts and status
    <run>/.lock                          held by the one writer (runfolder.RunLock)
    <run>/trees/part-00000.parquet       tree shards of a local run
    <run>/trees/part-00000-<tag>.parquet tree shards of a Ray worker (tag: its lifetime)
    <run>/trees/.NAME.tmp-PID            a file being written (never matches a glob)
    <run>/trees/NAME.damaged             a shard that could not be read, moved aside
    <export>/<split>-00000-of-00003.parquet (.json for Marco-o1)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from cotgen.errors import DataError
from cotgen.jsontext import JSON_TYPES

MANIFEST = "manifest.json"
TREES_DIR = "trees"
SHARD_GLOB = "part-*.parquet"
# Exports are Hub-style: <split>-00000-of-00003.parquet (.json for Marco-o1).
EXPORT_SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_.-]+)-\d{5}-of-\d{5}\.(?P<ext>parquet|json)$")
EXPORT_SHARD_PARTS = re.compile(r"^(?P<split>[A-Za-z0-9_.-]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.(?P<ext>parquet|json)$")


# part-00000.parquet from a local run; part-00000-<tag>.parquet from a Ray worker, whose tag
# is unique to that worker's lifetime, so workers writing to one folder never pick one name.
TREE_SHARD = re.compile(r"^part-(?P<index>\d{5,})(?:-(?P<tag>[A-Za-z0-9]+))?\.parquet$")


def tree_shard_name(index: int, tag: str | None = None) -> str:
    return f"part-{index:05d}.parquet" if tag is None else f"part-{index:05d}-{tag}.parquet"


def export_shard_name(split: str, index: int, count: int, ext: str) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.{ext}"


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / MANIFEST).is_file() or (path / TREES_DIR).is_dir())


def shard_paths(run_dir: Path) -> list[Path]:
    """The complete shards of a run, in order. Temporary files never match the glob."""
    return sorted((Path(run_dir) / TREES_DIR).glob(SHARD_GLOB))


def export_files(folder: Path) -> list[Path]:
    """The export shards of a folder (`<split>-NNNNN-of-NNNNN.<ext>`), in name order."""
    return sorted(f for f in Path(folder).iterdir() if f.is_file() and EXPORT_SHARD.match(f.name))


LOCK_NAME = ".lock"
DAMAGED_SUFFIX = ".damaged"  # a damaged shard's new name: part-NNNNN.parquet.damaged
# The manifest's status (runfolder, rule 3).
RUNNING, COMPLETE, INTERRUPTED = "running", "complete", "interrupted"
UNFINISHED = (RUNNING, INTERRUPTED)


def temporary_name(path: Path) -> Path:
    """Where `path` is written before it is complete: hidden, and never matching a shard glob."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and ".tmp-" in path.name


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise DataError(f"{path}: cannot read the run manifest (JSON nested too deeply to read)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the run manifest ({exc})") from None
    if not isinstance(manifest, dict):
        kind = JSON_TYPES.get(type(manifest), "a JSON array" if isinstance(manifest, list) else "not an object")
        raise DataError(f"{path}: the run manifest is {kind}, expected a JSON object")
    return manifest
