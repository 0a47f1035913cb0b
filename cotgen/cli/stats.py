"""`cotgen stats`: shape, kinds, ratings and correct leaves over tree files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cotgen.cli.app import app, emit_json, err
from cotgen.cli.options import JsonFlag
from cotgen.treestats import TreeHistograms


@app.command()
def stats(
    paths: Annotated[list[Path], typer.Argument(help="Run folders, tree shards, OpenLongCoT or Marco-o1 files.")],
    as_json: JsonFlag = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw histograms to this .png, .svg or .pdf (needs cotgen[plot]).", show_default=False),
    ] = None,
) -> None:
    """Rows, nodes per tree, depth, branching, share of each kind and rating, correct leaves."""
    from cotgen.io.trees import iter_located_trees, tree_inputs
    from cotgen.treestats import TreeSetSummary

    summary = TreeSetSummary()
    hist = None
    if plot is not None:
        from cotgen.view.plot import check_plot_path, plot_stats

        check_plot_path(plot)
        hist = TreeHistograms()
    for tree, where in iter_located_trees(tree_inputs(paths), on_skip=summary.unreadable):
        if summary.add(tree, where) and hist is not None:
            hist.add(tree)
    figures = summary.as_dict()
    if summary.invalid:
        err.print(f"warning: {summary.invalid} invalid or unreadable tree(s) not counted (as export skips them); "
                  f"the first: {figures['first_invalid']}; `cotgen validate` lists every problem",
                  markup=False, highlight=False, soft_wrap=True)
    if plot is not None:
        plot_stats(hist, summary, plot)
        err.print(f"wrote {plot}", markup=False, soft_wrap=True)
    if as_json:
        emit_json(figures, sort_keys=True)
        return
    table = Table(title="cotgen stats", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if isinstance(value, dict):
            value = "  ".join(f"{k} {v:.1%}" for k, v in value.items())
        elif value is None:
            value = "-"
        elif isinstance(value, float):
            value = f"{value:.3f}"
        table.add_row(key, str(value))
    err.print(table)
