"""The typer application every subcommand module registers on, and the shared consoles."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(
    name="cotgen",
    help="Synthesize long chain-of-thought training data: MCTS trees, exports, validation, Hub.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# stdout carries data (--json, exported rows); stderr carries messages, tables and progress.
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, highlight=False)


def emit_json(obj: Any, **dumps: Any) -> None:
    """One JSON document on one line of stdout: written as is, never wrapped or styled."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, **dumps) + "\n")
    sys.stdout.flush()


def print_skipped(skipped: Counter[str], examples: dict[str, str], what: str) -> None:
    """What a command passed over (export's trees, view's rows): each reason, most frequent
    first, with how many `what` it cost and the first one it was seen on."""
    for reason, count in skipped.most_common():
        err.print(f"skipped {count:,} {what}: {reason}", style="yellow", markup=False, soft_wrap=True)
        err.print(f"  first: {examples[reason]}", markup=False, soft_wrap=True)


@contextlib.contextmanager
def quiet_libraries(quiet: bool) -> Iterator[None]:
    """With `quiet`, the libraries cotgen runs (transformers, torch, datasets) print no
    warnings either: `--quiet` means quiet. cotgen's own errors still reach stderr."""
    if not quiet:
        yield
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is imported
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    loggers = [logging.getLogger(name) for name in ("transformers", "datasets", "huggingface_hub", "torch")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        if "transformers" in sys.modules:  # already imported: its verbosity was read then
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


@app.callback()
def _root() -> None:
    """Synthesize long chain-of-thought training data: MCTS trees, exports, validation, Hub."""
