"""The built wheel carries the prompt templates, schemas, view assets and tiny-reasoner, not only
the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_prompts_and_schemas(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cotgen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("prompts", "schemas", "view/assets", "reasoner/tiny-reasoner", "benchmarks/data"):
        expected = {
            f"cotgen/{folder}/{p.relative_to(REPO / 'cotgen' / folder).as_posix()}"
            for p in (REPO / "cotgen" / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        assert expected, f"cotgen/{folder} is empty in the checkout"
        assert expected <= names, sorted(expected - names)
    assert "cotgen/cli/main.py" in names
