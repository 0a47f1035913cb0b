"""Run folders: who may write one, how a writer takes one over after a crash, and how a
reader tells a finished run from an unfinished one.

The rules, in one place (synthesize follows them; any other writer of a run folder, such as
a driver handing problems to remote workers, must follow them too):

1. One writer. A process writes shards or the manifest of a run folder only while it holds
   `RunLock(run)`: an exclusive `flock` on `<run>/.lock`. The kernel drops the lock when
   the holder exits, however it exits (kill -9 included), so a lock left by a dead process
   never blocks the next run. The file names its holder (pid, host, command, start time)
   so that a second writer is refused with a message saying who holds the folder. Workers
   of one run (executors.worker, in the holder's process or on Ray) are part of the
   holder: each writes its own shards under names no other worker picks (a Ray worker's
   carry its tag) and links them into `trees/` complete (never over an existing name);
   only the holder writes the manifest, recording each shard a worker reports. On a
   network filesystem `flock` may not lock across machines: take the lock on one machine
   (the driver) only, never from the workers.
2. The shards are the truth. Every shard is written to a temporary name
   (`.part-NNNNN.parquet.tmp-PID`) and renamed once complete; the manifest is written after
   the rename. On taking the lock a writer removes every temporary file in the folder (no
   other live process can own one) and rebuilds the manifest's shard list and counts from
   the shards on disk (`reconcile`). A tree id found twice (two writers before this rule,
   or a crash between a retry's write and the removal of the failed record it replaces)
   keeps one record, a good one where there is one. A failed tree is searched again unless
   the user keeps failed trees; its record stays until the retry is written. Every shard is
   read whole, as every reader reads it: one that cannot be (a flipped byte, a truncated
   copy) is damaged, renamed `part-NNNNN.parquet.damaged` (kept, for a look, but no reader
   takes it for a shard), named in the manifest's `damaged_shards` and by the writer, and
   its problems are searched again.
3. The manifest's `status` says whether the run finished: `running` from the moment a
   writer takes the folder, `complete` once every problem has a tree, `interrupted` when
   the writer stopped early and knew it (Ctrl-C, SIGTERM, a failed engine, a full disk).
   A folder whose status is `running` or `interrupted`, or which holds `trees/` but no
   manifest, is unfinished: every reader refuses it with `check_finished`, naming what to
   do. A manifest without `status` (written before this rule) counts as finished.
   A shard file given by name is always read: each shard is complete on its own.
4. Nothing is written through a link. A run folder may come from elsewhere or be shared, so
   a name in it may be a planted link to any file the user can write. The lock file is
   opened with O_NOFOLLOW and refused when it is a symbolic link, a hard link, not a plain
   file, or a file cotgen did not write; temporary files are created new (O_EXCL, after
   removing whatever had the name), and reach their final name by rename or link, which
   replace a name and never write through it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotgen.errors import DataError, RunError, UsageError, first_line
from cotgen.io.atomic import atomic_file, crash_point
from cotgen.io.layout import (
    COMPLETE,
    DAMAGED_SUFFIX,
    INTERRUPTED,
    LOCK_NAME,
    MANIFEST,
    RUNNING,
    TREES_DIR,
    UNFINISHED,
    is_temporary,
    read_manifest,
    shard_paths,
)

__all__ = ["COMPLETE", "INTERRUPTED", "RUNNING", "Reconciled", "RunLock", "check_finished", "check_run_finished",
           "is_locked", "reconcile"]


class RunLock:
    """Exclusive ownership of one run folder for as long as the object is held (see rule 1).

    Use as a context manager; `acquire` raises UsageError naming the holder when another
    live process has the folder, and RunError when the folder cannot be created or written
    (a read-only disk, no permission), before any model is loaded.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise UsageError(f"--out {self.run_dir}: exists and is not a folder") from None
        except OSError as exc:
            raise RunError(f"--out {self.run_dir}: cannot create the run folder ({exc.strerror})") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NO_FOLLOW, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise self._refusal("is a symbolic link") from None
                raise RunError(f"--out {self.run_dir}: cannot write in the run folder ({exc.strerror})") from None
            foreign = _foreign_lock(fd)
            if foreign:
                os.close(fd)
                raise self._refusal(foreign)
            if not _flock_soon(fd, fcntl.LOCK_EX):
                holder = describe_holder(self.path)
                os.close(fd)
                raise UsageError(
                    f"--out {self.run_dir}: another cotgen process is writing this run folder ({holder}); "
                    "one run folder has one writer: wait for it to finish, stop it, or use another --out"
                ) from None
            # The file may have been removed by a holder that released it between our open and
            # our flock; a lock on a removed file guards nothing, so take the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        if (self.run_dir / TREES_DIR).is_symlink():
            # Two run folders sharing one trees/ through a link would have two writers.
            os.close(fd)
            raise self._refusal_of(self.run_dir / TREES_DIR, "is a symbolic link")
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(["cotgen", *sys.argv[1:]])[:500],
        }
        try:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(holder) + "\n").encode("utf-8"))
        except OSError as exc:
            os.close(fd)
            raise RunError(f"--out {self.run_dir}: cannot write in the run folder ({exc.strerror})") from None
        self._fd = fd
        return self

    def _refusal(self, what: str) -> UsageError:
        return UsageError(
            f"--out {self.run_dir}: {self.path} {what}; cotgen writes its lock there and never "
            f"writes through a link or over a file it did not make: remove {self.path} if the "
            "folder is yours, or use another --out"
        )

    def _refusal_of(self, path: Path, what: str) -> UsageError:
        return UsageError(
            f"--out {self.run_dir}: {path} {what}; the lock of one folder guards what is in it, "
            f"so cotgen never writes through a link there: make {path} a folder of its own, or use another --out"
        )

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlink while still holding the lock, so that no one takes a lock on a file that is
        # about to vanish (acquire checks the inode for the same reason).
        try:
            self.path.unlink()
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# Opening a lock file never follows a link, and never waits on a FIFO planted in its place.
NO_FOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _foreign_lock(fd: int) -> str | None:
    """Why the open lock file is not one cotgen may truncate and rewrite, or None: it must be
    a plain file with one name, empty or holding a lock record that cotgen wrote."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return "is not a plain file"
    if info.st_nlink > 1:
        return f"is a hard link to a file with {info.st_nlink} names"
    if info.st_size == 0:
        return None
    if info.st_size > 64 * 1024:
        return "is not a cotgen lock file (too big)"
    try:
        record = json.loads(os.pread(fd, info.st_size, 0).decode("utf-8"))
    except (OSError, ValueError):
        return "is not a cotgen lock file"
    return None if isinstance(record, dict) and "pid" in record else "is not a cotgen lock file"


def _flock_soon(fd: int, mode: int, patience_s: float = 1.0) -> bool:
    """Take the flock within `patience_s`: a reader's brief shared lock (is_locked) must not
    make a writer think the folder is taken."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def describe_holder(lock_path: Path) -> str:
    """'pid 123 on host h since T: cotgen synthesize ...' from a lock file, as well as it can."""
    try:
        fd = os.open(lock_path, os.O_RDONLY | NO_FOLLOW)
        try:
            info = json.loads(os.read(fd, 64 * 1024).decode("utf-8") or "{}")
        finally:
            os.close(fd)
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host', '?')} since {info.get('since', '?')}: {info.get('command', '?')}"


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run folder's lock now (a reader's question)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | NO_FOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def check_finished(run_dir: Path, manifest: dict[str, Any] | None, has_trees: bool) -> None:
    """Raise DataError when the run folder is unfinished (rule 3), saying what to do."""
    run_dir = Path(run_dir)
    shards = f"{run_dir / 'trees'}/part-*.parquet"
    if manifest is None or (not manifest and has_trees):
        if has_trees:
            raise DataError(
                f"{run_dir}: an unfinished run folder: trees/ but no manifest.json (the writer stopped "
                f"before its first manifest, or the folder is a partial copy); rerun the command that "
                f"wrote it, or give its shards by name ({shards}) to read the trees it holds"
            )
        return
    status = manifest.get("status")
    if status not in UNFINISHED:
        return
    trees = (manifest.get("counts") or {}).get("trees", "?") if isinstance(manifest.get("counts"), dict) else "?"
    if is_locked(run_dir):
        raise DataError(
            f"{run_dir}: an unfinished run folder: being written now ({describe_holder(run_dir / LOCK_NAME)}); "
            f"read it once that run ends, or give its shards by name ({shards})"
        )
    why = "was stopped early" if status == INTERRUPTED else "was killed while running"
    raise DataError(
        f"{run_dir}: an unfinished run folder: the run {why} ({trees} tree(s) saved); rerun the same "
        f"synthesize command to finish it, or give its shards by name ({shards}) to read them as they are"
    )


def check_run_finished(run_dir: Path) -> None:
    """check_finished on the folder as it is on disk: every reader of a run folder asks this."""
    has_manifest = (Path(run_dir) / MANIFEST).is_file()
    manifest = read_manifest(run_dir) if has_manifest else None
    check_finished(run_dir, manifest, has_trees=bool(shard_paths(run_dir)))


@dataclass
class Reconciled:
    """What `reconcile` found and did."""

    done_ids: set[str] = field(default_factory=set)  # trees the run does not search again
    removed_temporaries: list[str] = field(default_factory=list)
    dropped_duplicates: int = 0  # records of a tree id that another record of it supersedes
    retried_failed: int = 0  # failed trees the run searches again (their record stays until then)
    damaged: list[dict[str, str]] = field(default_factory=list)  # shards moved aside: shard, name, reason
    shards: list[dict[str, Any]] = field(default_factory=list)  # the manifest's shard list


def remove_temporaries(run_dir: Path) -> list[str]:
    """Remove every temporary file (`.NAME.tmp-PID`) of the run; only the lock holder may."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / TREES_DIR):
        if folder.is_dir():
            for p in folder.iterdir():
                if is_temporary(p) and p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(str(p))
    return removed


def reconcile(run_dir: Path, *, keep_failed: bool = False) -> Reconciled:
    """Make the shards on disk the whole truth of the run (rule 2); the caller holds the lock.

    Removes temporaries; keeps one record per tree id, rewriting the shards that hold the
    others atomically (a good record beats a failed one, as after a crash between a retry's
    write and TreeShardWriter.drop_retried_failures; else the first is kept); and returns
    the shard list for the manifest and the ids the run need not search again: those with a
    good record, and with `keep_failed` the failed ones too. A failed record stays on disk
    until its retry is written. Reads every shard whole (a shard readable by its `id` and
    `error` columns only would pass for done while no reader can read its trees); a damaged
    one is moved aside (`move_aside`) and listed in `damaged`, so its trees are searched again.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    crash_point("reconcile-start")
    result = Reconciled(removed_temporaries=remove_temporaries(run_dir))
    columns: dict[Path, tuple[list[Any], list[bool]]] = {}
    for path in shard_paths(run_dir):
        try:
            columns[path] = read_whole_shard(path)
        except DataError as exc:
            aside = move_aside(path)
            result.damaged.append({"shard": path.name, "name": aside.name, "reason": str(exc)[:500]})
    # The record each id keeps: the first good one, else the first failed one.
    keeper: dict[Any, tuple[Path, int]] = {}
    for path, (ids, failed) in columns.items():
        for row, (tid, bad) in enumerate(zip(ids, failed, strict=True)):
            held = keeper.get(tid)
            if held is None or (columns[held[0]][1][held[1]] and not bad):
                keeper[tid] = (path, row)
    for path, (ids, failed) in columns.items():
        keep = [keeper[tid] == (path, row) for row, tid in enumerate(ids)]
        result.dropped_duplicates += keep.count(False)
        if not all(keep):
            kept = pq.read_table(path).filter(pa.array(keep))
            if kept.num_rows == 0:
                path.unlink()
                continue
            with atomic_file(path) as f:
                pq.write_table(kept, f, compression="zstd")
        kept_failed = [bad for bad, k in zip(failed, keep, strict=True) if k]
        result.shards.append({"name": path.name, "rows": len(kept_failed), "failed": sum(kept_failed)})
    for tid, (path, row) in keeper.items():
        if columns[path][1][row] and not keep_failed:
            result.retried_failed += 1
        else:
            result.done_ids.add(tid)
    crash_point("reconciled")
    return result


def read_whole_shard(path: Path) -> tuple[list[Any], list[bool]]:
    """The tree ids of a shard and whether each tree failed, every tree read and parsed as
    every reader does; DataError names the first thing that cannot be."""
    import pyarrow as pa

    from cotgen.io.readers import BadRow, TreeShardReader

    ids: list[Any] = []
    failed: list[bool] = []
    try:
        for index, tree in TreeShardReader(path).trees():
            if isinstance(tree, BadRow):
                raise DataError(f"{path}: row {index}: {tree.message}")
            ids.append(tree.id)
            failed.append(tree.error is not None)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read the tree shard ({first_line(exc)})") from None
    return ids, failed


def move_aside(path: Path) -> Path:
    """Rename a damaged shard to `<name>.damaged` (`.damaged-2`, ... when taken), out of every
    reader's sight, and return its new path; only the lock holder may."""
    target, n = path.with_name(path.name + DAMAGED_SUFFIX), 1
    while os.path.lexists(target):
        n += 1
        target = path.with_name(f"{path.name}{DAMAGED_SUFFIX}-{n}")
    os.rename(path, target)
    return target


