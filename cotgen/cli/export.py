"""`cotgen export INPUT... --format F --out DIR`: trees to Hub-style shards of one format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cotgen.cli.app import app, emit_json, err, print_skipped
from cotgen.cli.options import JsonFlag, OutDir, QuietFlag
from cotgen.export import DEFAULT_MAX_SHARD_SIZE, ExportSummary
from cotgen.export import export as export_trees
from cotgen.formats import FORMATS, make_format

# Format options: None means "not given", so each format keeps its own default and an
# option a format does not take is refused by make_format.
_Opt = "Format option"


@app.command()
def export(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Run folders, tree shards, OpenLongCoT files (.parquet, .jsonl, .txt) or Marco-o1 .json files.", show_default=False),
    ],
    format: Annotated[str, typer.Option("--format", "-f", help=" | ".join(FORMATS), show_default=False)],
    out_dir: OutDir,
    split: Annotated[str, typer.Option("--split", help="Shard name prefix (the Hub split).")] = "train",
    max_shard_size: Annotated[
        str, typer.Option("--max-shard-size", help="Largest shard: 500MB, 1GB, 20KB, or bytes.")
    ] = DEFAULT_MAX_SHARD_SIZE,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace shards of this split already in --out.")] = False,
    root_rating: Annotated[bool | None, typer.Option("--root-rating/--no-root-rating", help=f"{_Opt} (openlongcot): rate the root record.")] = None,
    separator: Annotated[str | None, typer.Option("--separator", help=f"{_Opt} (openlongcot): between records; \\n, \\t and \\r are read as escapes.")] = None,
    journey: Annotated[bool | None, typer.Option("--journey/--no-journey", help=f"{_Opt} (marco, sft): walk through a refuted branch first.")] = None,
    max_journey_branches: Annotated[int | None, typer.Option("--max-journey-branches", help=f"{_Opt} (marco, sft).")] = None,
    reasoning_tags: Annotated[str | None, typer.Option("--reasoning-tags", help=f"{_Opt} (sft): think | thought | none.")] = None,
    system_prompt: Annotated[str | None, typer.Option("--system-prompt", help=f"{_Opt} (sft); '' = no system message.")] = None,
    paths: Annotated[str | None, typer.Option("--paths", help=f"{_Opt} (prm): terminal | all.")] = None,
    label_threshold: Annotated[float | None, typer.Option("--label-threshold", help=f"{_Opt} (prm): a step's share of correct rollouts that makes it good.")] = None,
    labels: Annotated[str | None, typer.Option("--labels", help=f"{_Opt} (prm): ratings (a rated step keeps its rating, an unknown one its share) | share.")] = None,
    margin: Annotated[float | None, typer.Option("--margin", help=f"{_Opt} (dpo): least value gap of a pair.")] = None,
    pairs: Annotated[str | None, typer.Option("--pairs", help=f"{_Opt} (dpo): best-worst | all.")] = None,
    json_out: JsonFlag = False,
    quiet: QuietFlag = False,
) -> int:
    """Export trees to <out>/<split>-00000-of-0000N.parquet (.json for marco)."""
    fmt = make_format(
        format,
        root_rating=root_rating,
        separator=_unescape(separator),
        journey=journey,
        max_journey_branches=max_journey_branches,
        reasoning_tags=reasoning_tags,
        system_prompt=system_prompt,
        paths=paths,
        label_threshold=label_threshold,
        labels=labels,
        margin=margin,
        pairs=pairs,
    )
    summary = export_trees(inputs, fmt, out_dir, split=split, max_shard_size=max_shard_size, overwrite=overwrite)
    if json_out:
        emit_json(summary.as_json())
    if not quiet:
        _print_summary(summary)
    return 0


def _unescape(text: str | None) -> str | None:
    if text is None:
        return None
    return text.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")


def _print_summary(s: ExportSummary) -> None:
    shards = f"{len(s.shards)} shard(s)" + (f": {s.shards[0]} ..." if len(s.shards) > 1 else f": {s.shards[0]}" if s.shards else "")
    err.print(
        f"exported {s.rows_written:,} {s.format} row(s) from {s.trees_exported:,} of {s.trees_read:,} tree(s) to {s.out} ({shards})",
        markup=False, soft_wrap=True,
    )
    if not s.rows_written:
        err.print("warning: no row was written", style="yellow", markup=False, soft_wrap=True)
    print_skipped(s.skipped, s.examples, "tree(s)")
