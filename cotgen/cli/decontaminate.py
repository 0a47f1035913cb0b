"""`cotgen decontaminate`: drop rows whose problem overlaps a benchmark question (word n-grams)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cotgen.cli.app import app, emit_json, err
from cotgen.cli.options import JsonFlag, OutDir, QuietFlag


@app.command()
def decontaminate(
    inputs: Annotated[list[Path], typer.Argument(help="Run folders, tree shards or exported files (one format).")],
    out_dir: OutDir,
    against: Annotated[list[str], typer.Option("--against", help="A benchmark: math500, gsm8k (shipped), aime24, aime25, amc23, math, olympiadbench, gpqa, lcb (through `datasets`), or a .jsonl/.json/.parquet file with a question column. Repeat it, or separate names with commas.")],
    ngram: Annotated[int, typer.Option("--ngram", help="Words per n-gram; a row sharing one with a benchmark question is removed.")] = 8,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Remove rows whose problem shares a word n-gram with a benchmark question; writes the
    same format and layout plus decontaminate.json (each removed row, its benchmark question
    and the shared n-grams)."""
    from cotgen.decontaminate import REPORT
    from cotgen.decontaminate import decontaminate as run_decontaminate

    specs = [name.strip() for value in against for name in value.split(",") if name.strip()]
    report = run_decontaminate(inputs, out_dir, specs, ngram)
    if as_json:
        summary = {k: v for k, v in report.as_json().items() if k != "removed"}
        summary["removed"] = len(report.removed)
        emit_json(summary, sort_keys=True)
    if quiet:
        return
    checked = ", ".join(f"{name} ({count})" for name, count in report.benchmark_items.items())
    err.print(f"decontaminate: {report.rows} rows, {report.kept} kept, {len(report.removed)} removed "
              f"(against {checked}; {report.ngram}-grams)", markup=False, soft_wrap=True)
    for name, count in sorted(report.removed_by_benchmark.items()):
        err.print(f"  {count} overlap {name}", markup=False)
    err.print(f"wrote {out_dir} (report: {out_dir / REPORT})", markup=False)
