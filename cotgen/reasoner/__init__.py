"""tiny-reasoner: a ~1M-parameter Qwen2 trained here on builtin:arith, shipped in the package."""

from __future__ import annotations

from pathlib import Path

from cotgen.errors import RunError

# The shipped weights, tokenizer and chat template (package data, ~4 MB).
PACKAGED = Path(__file__).parent / "tiny-reasoner"


def packaged_model_path() -> Path:
    """The folder of the shipped model, or a RunError saying how to get it back."""
    if not (PACKAGED / "config.json").is_file():
        raise RunError(
            f"the packaged tiny-reasoner is missing from {PACKAGED} (a broken install?): reinstall "
            "cotgen, or train one with `cotgen model train-tiny-reasoner --out DIR` and pass --model DIR"
        )
    return PACKAGED
