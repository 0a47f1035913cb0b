"""`cotgen model tiny|resolve|train-tiny-reasoner|train-prm`: build the tiny model, show what a
model name resolves to, train tiny-reasoner, train a process reward model."""

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
    from cotgen.errors import refuse_link_to_nowhere
    from cotgen.tiny_model import tiny_model_path, write_tiny_model

    if out_dir is not None:
        refuse_link_to_nowhere(out_dir)
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


@model_app.command("train-tiny-reasoner")
def train_tiny_reasoner(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the trained model into.")],
    steps: Annotated[int, typer.Option(help="Optimizer steps (the shipped model: the default).")] = 2400,
    seed: Annotated[int, typer.Option(help="Seeds the weights, the tokenizer's texts and the data.")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads; bit-identical only at the same count.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per step.")] = 32,
    save_every: Annotated[int, typer.Option("--save-every", help="Also write OUT/checkpoint-N every N steps; 0: off.")] = 0,
    lr: Annotated[float, typer.Option(help="Peak learning rate (cosine decay).")] = 3e-3,
    warmup: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 100,
    init_from: Annotated[Path | None, typer.Option("--init-from", help="Continue from this model folder (a second phase).")] = None,
    mix: Annotated[
        str | None,
        typer.Option(help="Share of each kind of example: phase1 (the default), phase2, phase3, or written "
                     "out, e.g. 'solve=0.4,times=0.3,...' (kinds: solve, judge, critic, refine, conclusion, "
                     "drill, times, sums)."),
    ] = None,
) -> None:
    """Train tiny-reasoner (~1M-parameter Qwen2) on builtin:arith problems of seeds below 1000:
    steps in the policy's format, conclusions, critic, refine and the judge's Yes/No."""
    from cotgen.errors import UsageError
    from cotgen.reasoner.data import MIX, parse_mix
    from cotgen.reasoner.train import TrainConfig, train

    try:
        cfg = TrainConfig(
            steps=steps, seed=seed, threads=threads, batch_size=batch_size, lr=lr, warmup=warmup,
            init_from=str(init_from) if init_from else None, mix=parse_mix(mix) if mix else MIX,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if init_from is not None and not (init_from / "config.json").is_file():
        raise UsageError(f"--init-from {init_from}: not a model folder (no config.json)")
    if save_every < 0:
        raise UsageError(f"--save-every must be >= 0, not {save_every}")
    record = train(out_dir, cfg, log=lambda line: err.print(line, markup=False), save_every=save_every)
    err.print(f"tiny-reasoner trained in {record['seconds']:.0f}s, final loss {record['final_loss']:.4f}")
    out.print(str(out_dir), markup=False)


@model_app.command("train-prm")
def train_prm(
    inputs: Annotated[list[Path], typer.Argument(help="A prm or processbench export, tree shards or run folders.")],
    base: Annotated[str, typer.Option(help="The model the PRM starts from: alias, folder or Hub id.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the PRM into (what --value-model loads).")],
    separator: Annotated[str, typer.Option(help="The step separator the PRM reads each step's score at; \\n, \\t are read as escapes.")] = "\\n\\n",
    epochs: Annotated[float, typer.Option(help="Passes over the paths.")] = 2.0,
    lr: Annotated[float, typer.Option(help="Peak learning rate (linear decay).")] = 5e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Paths per optimizer step.")] = 16,
    max_length: Annotated[int | None, typer.Option("--max-length", help="Longer paths are left out (counted); default: the base's context.")] = None,
    seed: Annotated[int, typer.Option(help="Seeds the shuffle and the new head.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N | mps")] = "auto",
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow the base repo's own Python code.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune a process reward model (token classification, a label at each step's
    separator) on cotgen's step labels; `synthesize --value prm --value-model OUT` uses it."""
    from cotgen.errors import UsageError
    from cotgen.prm_train import PRMTrainConfig
    from cotgen.prm_train import train_prm as run_training

    try:
        cfg = PRMTrainConfig(base=base, separator=separator.replace("\\n", "\n").replace("\\t", "\t"), epochs=epochs, lr=lr, batch_size=batch_size,
                             max_length=max_length, seed=seed, device=device, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a folder")
    record = run_training(inputs, out_dir, cfg, log=lambda line: err.print(line, markup=False))
    err.print(f"PRM trained in {record['seconds']:.0f}s on {record['paths']} paths, "
              f"{record['labelled_steps']} labelled steps; loss {record['train_loss']:.4f}")
    if as_json:
        emit_json({"out": str(out_dir), **record})
    else:
        out.print(str(out_dir), markup=False)
