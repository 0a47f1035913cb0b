"""`cotgen validate PATH...`: per-row problems of files and run folders, then a summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cotgen.cli.app import app, emit_json, err
from cotgen.cli.options import FormatName, JsonFlag, QuietFlag
from cotgen.errors import located
from cotgen.validate import DEFAULT_MAX_ERRORS, FileReport, validate_paths


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Files (.parquet, .jsonl, .txt, .json) or run folders.", show_default=False)],
    format: FormatName = None,
    json_out: JsonFlag = False,
    max_errors: Annotated[
        int, typer.Option("--max-errors", min=0, help="Findings shown per file (0 = all); counts stay exact.")
    ] = DEFAULT_MAX_ERRORS,
    quiet: QuietFlag = False,
) -> int:
    """Check every row; exit 0 when no errors (warnings allowed), 1 on any error, 2 on bad usage."""
    reports: list[FileReport] = []
    for report in validate_paths(paths, format, max_errors):
        reports.append(report)
        if json_out:
            emit_json(report.as_json())
        if not quiet:
            _print_findings(report)
    if not quiet:
        err.print(_summary_table(reports))
    return 1 if any(not r.ok for r in reports) else 0


def _print_findings(report: FileReport) -> None:
    for f in report.errors:
        style = "red" if f["severity"] == "error" else "yellow"
        line = located(report.file, f["row"], f"{f['severity']}: {f['message']}", f.get("offset"))
        err.print(line, style=style, markup=False, emoji=False, highlight=False, soft_wrap=True)
    hidden = report.error_count + report.warning_count - len(report.errors)
    if hidden > 0:
        err.print(f"{report.file}: ... and {hidden:,} more finding(s) (--max-errors 0 shows all)", soft_wrap=True, markup=False)


def _summary_table(reports: list[FileReport]) -> Table:
    table = Table(title="validate")
    for name, justify in (("file", "left"), ("format", "left"), ("rows", "right"), ("valid", "right"), ("errors", "right"), ("warnings", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    for r in reports:
        table.add_row(
            r.file,
            r.format or "?",
            f"{r.rows:,}",
            f"{r.valid_rows:,}",
            f"[red]{r.error_count:,}[/]" if r.error_count else "0",
            f"[yellow]{r.warning_count:,}[/]" if r.warning_count else "0",
        )
    return table
