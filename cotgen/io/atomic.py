"""Writing a file so that a crash never leaves it half-written under its final name, and
the test hook that kills a run at a named moment to prove it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from cotgen.io.layout import temporary_name


def open_new(path: Path, mode: str = "wb") -> IO[Any]:
    """Open `path` as a new file for writing. Whatever had the name (a stale temporary, or a
    link planted in a folder cotgen did not make) is removed first, never written through:
    O_EXCL creates the file or fails, and never follows a link."""
    path.unlink(missing_ok=True)  # a link itself, never its target
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    return os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8")


@contextmanager
def atomic_file(path: Path, mode: str = "wb", moment: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`,
    so a crash never leaves a half-written file under the final name (and a failure, a full
    disk, leaves no temporary either). `moment` names the instants before and after the
    rename for the crash tests (cotgen.io.atomic.crash_point)."""
    tmp = temporary_name(path)
    try:
        with open_new(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if moment:
        crash_point(f"{moment}-tmp-written")
    os.replace(tmp, path)
    if moment:
        crash_point(f"{moment}-renamed")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON atomically (see `atomic_file`)."""
    with atomic_file(path, "w") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")


def crash_point(name: str) -> None:
    """Test hook at a named moment of a run. With COTGEN_CRASH_AT=name[:N], the N-th
    (default first) time the run passes `name` the process kills itself with SIGKILL,
    exactly as `kill -9` would at that moment; the crash tests use it to hit moments no
    timing can (between a shard's rename and the manifest write). With
    COTGEN_PAUSE_AT=name[:N] it sleeps COTGEN_PAUSE_SECONDS (default 10) there instead, so
    that a test can act while a writer is known to be alive; COTGEN_PAUSE_MARK names a file
    it creates as the pause begins, for a test to wait on. Unset, it costs a dict lookup."""
    for variable in ("COTGEN_CRASH_AT", "COTGEN_PAUSE_AT"):
        spec = os.environ.get(variable)
        if not spec:
            continue
        point, _, nth = spec.partition(":")
        if point != name:
            continue
        count = _HOOK_COUNTS[variable, name] = _HOOK_COUNTS.get((variable, name), 0) + 1
        if count != int(nth or 1):
            continue
        if variable == "COTGEN_CRASH_AT":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        mark = os.environ.get("COTGEN_PAUSE_MARK")
        if mark:
            open(mark, "x").close()
        time.sleep(float(os.environ.get("COTGEN_PAUSE_SECONDS", "10")))


_HOOK_COUNTS: dict[tuple[str, str], int] = {}
