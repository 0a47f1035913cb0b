"""The errors cotgen raises for users: each carries a message a person can act on."""

from __future__ import annotations


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
    """The user pressed Ctrl-C; finished work was saved. Exit code 130."""

    exit_code = 130


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
