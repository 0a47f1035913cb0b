"""Options shared by several subcommands, as Annotated aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or tables on stderr.")]
OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
FormatName = Annotated[
    str | None,
    typer.Option("--format", "-f", help="openlongcot | marco | sft | prm | dpo | trees"),
]
