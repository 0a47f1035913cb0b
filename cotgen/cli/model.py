"""`cotgen model tiny|resolve`: build the tiny model, show what a model name resolves to."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cotgen.cli.app import app, emit_json, err, out
from cotgen.cli.options import JsonFlag

model_app = typer.Typer(help="Models: build the tiny test model, resolve a model name.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("tiny")
def tiny(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder to write the model into (default: the user cache)."),
    ] = None,
) -> None:
    """Build the tiny random-weight Qwen2 model (demos and tests only; its text is noise)."""
    from cotgen.engines.tiny import tiny_model_path, write_tiny_model

    t0 = time.perf_counter()
    path = write_tiny_model(out_dir) if out_dir is not None else tiny_model_path()
    err.print(f"tiny model ready in {time.perf_counter() - t0:.2f}s")
    out.print(str(path), markup=False)


@model_app.command("resolve")
def resolve(
    name: Annotated[str, typer.Argument(help="An alias (qwen2.5-7b), tiny, a folder or a Hub id.")],
    as_json: JsonFlag = False,
) -> None:
    """Print what a model name resolves to, or why it cannot be had."""
    from cotgen.models import resolve_model

    model = resolve_model(name)
    if as_json:
        record = {"name": model.name, "model_id": model.model_id, "kind": model.kind, "path": model.path and str(model.path)}
        emit_json(record)
        return
    where = f" (local: {model.path})" if model.path is not None and str(model.path) != model.model_id else ""
    out.print(f"{model.name} -> {model.model_id} [{model.kind}]{where}", markup=False)
