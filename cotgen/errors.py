"""The errors cotgen raises for users: each carries a message a person can act on."""

from __future__ import annotations

import errno
import re


class CotgenError(Exception):
    """Base of every error meant for a user. `exit_code` is what the CLI exits with."""

    exit_code = 1


class DataError(CotgenError):
    """Input data is invalid: a file, a row, a record. Exit code 1."""

    exit_code = 1


class RunError(CotgenError):
    """A run failed for a reason outside the data (model, engine, network). Exit code 1."""

    exit_code = 1


class EngineFailed(RunError):
    """The engine itself failed (its process died, its server went away), not one request:
    every call in flight fails with it. A run stops and records none of its trees in flight,
    so a rerun searches them again. Exit code 1."""


class UsageError(CotgenError):
    """The command was called wrongly: missing file, unknown format, bad option. Exit code 2."""

    exit_code = 2


class MissingExtraError(UsageError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'cotgen[{extra}]'"
        )


class InvalidTree(DataError):
    """A tree breaks one of its invariants (see cotgen.tree.broken_invariants)."""


class Interrupted(CotgenError):
    """Ctrl-C or SIGTERM stopped the run; finished work was saved. Exit code 130 (SIGINT) or
    143 (SIGTERM), as a shell reports a process those signals stop."""

    exit_code = 130

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def located(path: object, row: int | None, message: str, offset: int | None = None) -> str:
    """Format 'FILE: row R, char C: message', the one shape every data error message takes."""
    where = str(path)
    if row is not None:
        where += f": row {row}"
    if offset is not None:
        where += f", char {offset}"
    return f"{where}: {message}"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library messages can run for pages)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# OSErrors that come from the machine, not from a bug: a full disk, a read-only mount, a
# missing permission, a path through a file. What a user does about each.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free some space, or write elsewhere",
    errno.EDQUOT: "free some space under your quota, or write elsewhere",
    errno.EROFS: "write to a writable file system",
    errno.EACCES: "check the permissions, or write elsewhere",
    errno.EPERM: "check the permissions, or write elsewhere",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder, expected a file",
    errno.EEXIST: "something is already there",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EIO: "the device reported an I/O error",
    errno.ELOOP: "a symbolic link on the path leads back to itself",
}


def environment_error(exc: OSError, doing: str | None = None, where: object = None) -> RunError | None:
    """A RunError naming the file (or `where`, when the error names none) and what to do,
    for an OSError the machine caused; None for any other OSError (a bug, which keeps its
    traceback)."""
    hint = ENVIRONMENT_ERRNOS.get(exc.errno or -1)
    if hint is None:
        return None
    where = exc.filename if exc.filename is not None else (where if where is not None else "(no file name)")
    what = f"cannot {doing}: " if doing else ""
    reason = exc.strerror or errno.errorcode.get(exc.errno or -1, "error")
    return RunError(f"{where}: {what}{reason} ({hint})")


def refuse_link_to_nowhere(out: object, option: str = "--out") -> None:
    """Refuse an output path that is a symbolic link to nothing (dangling, or a loop) before
    anything writes there: mkdir would say "File exists", and Path.resolve() raises."""
    import os

    path = os.fspath(out)  # type: ignore[arg-type]
    if os.path.islink(path) and not os.path.exists(path):
        raise UsageError(f"{option} {path}: a symbolic link that leads nowhere (dangling, or a loop); "
                         "remove it or choose another path")


def reason_key(reason: str) -> str:
    """The key a skip reason is counted under: refusals of different trees differ only by
    the tree id in front and by numbers, so they count as one reason (export and view)."""
    reason = re.sub(r"^tree [0-9a-f]+: ", "", reason.strip())
    reason = reason.splitlines()[0] if reason else "no reason given"
    return re.sub(r"\b\d+\b", "N", reason)[:200]
