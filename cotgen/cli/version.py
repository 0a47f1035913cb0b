"""`cotgen version`: print the installed version."""

from __future__ import annotations

from cotgen import __version__
from cotgen.cli.app import app, out


@app.command()
def version() -> None:
    """Print cotgen's version."""
    out.print(__version__)
