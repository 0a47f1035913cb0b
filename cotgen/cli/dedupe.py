"""`cotgen dedupe`: drop exact and near-duplicate rows or trees, keeping format and layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cotgen.cli.app import app, emit_json, err
from cotgen.cli.options import JsonFlag, OutDir, QuietFlag, build_settings


@app.command()
def dedupe(
    inputs: Annotated[list[Path], typer.Argument(help="Run folders, tree shards or exported files (one format).")],
    out_dir: OutDir,
    on: Annotated[str, typer.Option("--on", help="text: the row's full text; problem: one tree per problem.")] = "text",
    threshold: Annotated[float, typer.Option("--threshold", help="Estimated Jaccard at which rows are near duplicates.")] = 0.85,
    num_perm: Annotated[int, typer.Option("--num-perm", help="MinHash permutations.")] = 128,
    ngram: Annotated[int, typer.Option("--ngram", help="Words per shingle.")] = 5,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Remove exact and near-duplicate rows (MinHash LSH); writes the same format plus dedupe.json."""
    from cotgen.dedupe import DedupeConfig
    from cotgen.dedupe import dedupe as run_dedupe

    settings = build_settings(DedupeConfig, on=on, threshold=threshold, num_perm=num_perm, ngram=ngram)
    report = run_dedupe(inputs, out_dir, settings)
    if as_json:
        summary = {k: v for k, v in report.as_json().items() if k != "clusters"}
        summary["clusters"] = len(report.clusters)
        emit_json(summary, sort_keys=True)
    if quiet:
        return
    table = Table(title=f"dedupe --on {on} ({report.format})")
    for column in ("rows", "kept", "exact dups", "near dups", "clusters"):
        table.add_column(column, justify="right")
    table.add_row(
        str(report.rows), str(report.kept), str(report.dropped["exact"]),
        str(report.dropped["near"]), str(len(report.clusters)),
    )
    err.print(table)
    err.print(f"wrote {out_dir} (report: {out_dir / 'dedupe.json'})", markup=False)
