"""Options shared by several subcommands, as Annotated aliases."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from cotgen.errors import UsageError

T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or tables on stderr.")]
OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
FormatName = Annotated[
    str | None,
    typer.Option("--format", "-f", help="openlongcot | marco | sft | prm | dpo | trees"),
]


def build_settings(cls: type[T], **values: Any) -> T:
    """`cls(**values)`, a settings record that raises ValueError naming a field; that error
    becomes a usage error naming the field's flag (`num_perm` -> `--num-perm`)."""
    try:
        return cls(**values)
    except ValueError as exc:
        message = str(exc)
        name = message.split(" ", 1)[0]
        if name in {f.name for f in fields(cls)}:  # type: ignore[arg-type]
            message = "--" + name.replace("_", "-") + message[len(name):]
        raise UsageError(message) from None
