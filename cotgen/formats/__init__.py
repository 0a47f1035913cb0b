"""Export formats: each is a plug-in class (Tree -> rows, row -> findings), looked up by name."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from cotgen.errors import UsageError
from cotgen.formats.base import ExportRefused, Finding, Format

__all__ = ["FORMATS", "ExportRefused", "Finding", "Format", "format_class", "make_format"]

# name -> "module:Class"; modules are imported only when their format is used.
FORMATS: dict[str, str] = {
    "openlongcot": "cotgen.formats.openlongcot:OpenLongCoTFormat",
    "marco": "cotgen.formats.marco:MarcoFormat",
    "sft": "cotgen.formats.sft:SFTFormat",
    "prm": "cotgen.formats.prm:PRMFormat",
    "dpo": "cotgen.formats.dpo:DPOFormat",
    "processbench": "cotgen.formats.processbench:ProcessBenchFormat",
}


def format_class(name: str) -> type:
    if name not in FORMATS:
        raise UsageError(f"unknown format '{name}' (expected one of: {', '.join(FORMATS)})")
    module, cls = FORMATS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_format(name: str, **options: Any) -> Format:
    """Build format `name` with the options that were given (None means 'not given').

    An option this format does not take is a usage error, not silently ignored.
    """
    cls = format_class(name)
    given = {k: v for k, v in options.items() if v is not None}
    accepted = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise UsageError(f"{flags} does not apply to --format {name}")
    try:
        return cls(**given)
    except ValueError as exc:
        raise UsageError(f"--format {name}: {exc}") from None
