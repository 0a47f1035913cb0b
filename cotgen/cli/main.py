"""The single exit point: runs the typer app and turns errors into messages and exit codes.

Exit codes: 0 ok, 1 invalid data or a failed run, 2 bad usage, 130 interrupted.
`COTGEN_DEBUG=1` shows the traceback of a CotgenError; unknown exceptions are bugs and
always keep theirs.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.markup import escape

from cotgen.cli.app import app, err
from cotgen.errors import CotgenError, environment_error

# Every subcommand, by the module that registers it on `app` (cotgen.cli.<name>), in the
# order --help lists them. A new subcommand is a module here and its name in this list.
COMMANDS = ("decontaminate", "dedupe", "export", "inspect", "model", "push", "stats", "synthesize", "validate", "version", "view")


def _register_commands() -> None:
    for name in COMMANDS:
        importlib.import_module(f"cotgen.cli.{name}")


def run(argv: list[str] | None = None) -> int:
    """Run the CLI with `argv` and return the exit code (tests call this)."""
    _register_commands()
    try:
        result = app(args=argv, prog_name="cotgen", standalone_mode=False)
        return int(result or 0)
    except CotgenError as exc:
        if os.environ.get("COTGEN_DEBUG") == "1":
            raise
        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:
        # Usage problems: unknown option, missing argument, bad value (exit code 2).
        exc.show(file=sys.stderr)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted")
        return 130
    except BrokenPipeError:
        # `cotgen ... | head`: the reader went away; not an error of ours.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # The last net for a disk that filled up or a folder that cannot be written where no
        # caller gave more context; other OSErrors are bugs and keep their traceback.
        known = environment_error(exc)
        if known is None or os.environ.get("COTGEN_DEBUG") == "1":
            raise
        err.print(f"[bold red]error:[/] {escape(str(known))}", markup=True, highlight=False, soft_wrap=True)
        return known.exit_code


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
