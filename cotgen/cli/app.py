"""The typer application every subcommand module registers on, and the shared consoles."""

from __future__ import annotations

import json
import sys
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


@app.callback()
def _root() -> None:
    """Synthesize long chain-of-thought training data: MCTS trees, exports, validation, Hub."""
