"""`cotgen view INPUT... --out SITE/`: an offline HTML site to explore search trees."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cotgen.cli.app import app, emit_json, err, print_skipped
from cotgen.cli.options import JsonFlag, QuietFlag


@app.command()
def view(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Run folders, tree shards, OpenLongCoT files (.parquet, .jsonl, .txt) or Marco-o1 .json files.", show_default=False),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the site to (open SITE/index.html).", show_default=False)],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a site cotgen view wrote there before.")] = False,
    json_out: JsonFlag = False,
    quiet: QuietFlag = False,
) -> int:
    """Write a self-contained site: an index of every tree and one page per tree; opens from disk."""
    from cotgen.view.site import build_site

    summary = build_site(inputs, out_dir, overwrite=overwrite)
    if json_out:
        emit_json(summary.as_json())
    if not quiet:
        err.print(
            f"wrote {summary.pages:,} tree page(s), {summary.nodes:,} nodes, {summary.bytes / 1e6:.1f} MB "
            f"to {summary.out}; open {Path(summary.out) / 'index.html'}",
            markup=False, soft_wrap=True,
        )
        if not summary.pages:
            err.print("warning: no tree was drawn", style="yellow", markup=False, soft_wrap=True)
        print_skipped(summary.skipped, summary.examples, "row(s)")
    return 0
