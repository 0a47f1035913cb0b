"""`cotgen push`: upload a run or an export to a Hugging Face dataset repo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cotgen.cli.app import app, emit_json, err
from cotgen.cli.options import JsonFlag, QuietFlag, build_settings


@app.command()
def push(
    input_path: Annotated[Path, typer.Argument(help="A run folder, an export folder or one exported file.")],
    repo: Annotated[str, typer.Option("--repo", help="Dataset repo OWNER/NAME (created if missing).")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[str, typer.Option("--revision", help="Branch to commit to.")] = "main",
    config: Annotated[str | None, typer.Option("--config", help="Config name (default: the format).")] = None,
    split: Annotated[str, typer.Option("--split", help="Split name.")] = "train",
    message: Annotated[str | None, typer.Option("--message", "-m", help="Commit message.")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Hub URL (default: $HF_ENDPOINT).")] = None,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Validate, then upload to data/<config>/<split>-*.parquet with a dataset card."""
    from cotgen.hub import PushConfig
    from cotgen.hub import push as run_push

    settings = build_settings(
        PushConfig, repo=repo, private=private, revision=revision, config=config, split=split,
        message=message, endpoint=endpoint,
    )
    report = run_push(input_path, settings, log=(lambda m: None) if quiet else (lambda m: err.print(m, markup=False)))
    if as_json:
        emit_json(report.as_json(), sort_keys=True)
    if not quiet:
        err.print(
            f"{report.url}: config '{report.config}', split '{report.split}', {report.rows} rows; "
            f"{len(report.uploaded)} file(s) uploaded, {len(report.unchanged)} unchanged, "
            f"{len(report.commits)} commit(s)",
            markup=False,
        )
