"""`cotgen stats`: shape, kinds, ratings and correct leaves over tree files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cotgen.cli.app import app, emit_json, err
from cotgen.cli.options import JsonFlag
from cotgen.treestats import TreeHistograms, summarize


@app.command()
def stats(
    paths: Annotated[list[Path], typer.Argument(help="Run folders, tree shards or OpenLongCoT files.")],
    as_json: JsonFlag = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw histograms to this .png, .svg or .pdf (needs cotgen[plot]).", show_default=False),
    ] = None,
) -> None:
    """Rows, nodes per tree, depth, branching, share of each kind and rating, correct leaves."""
    from cotgen.io.trees import iter_input_trees

    trees = iter_input_trees(paths)
    if plot is not None:
        from cotgen.view.plot import check_plot_path, plot_stats

        check_plot_path(plot)
        hist = TreeHistograms()
        trees = _also(trees, hist.add)
    summary = summarize(trees)
    figures = summary.as_dict()
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
        elif isinstance(value, float):
            value = f"{value:.3f}"
        table.add_row(key, str(value))
    err.print(table)


def _also(trees, visit):
    for tree in trees:
        visit(tree)
        yield tree
