"""`make demo`'s script end to end: the README promises it works on a fresh machine, and an
export layout change once broke its validate step (a provenance sidecar taken for a shard)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_script_runs_end_to_end(tmp_path: Path):
    bin_dir = Path(sys.executable).parent  # the venv's `cotgen` and `python`
    env = {**os.environ, "DEMO_OUT": str(tmp_path / "demo"), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert "step ratings" in r.stdout + r.stderr  # the comparison table and F1 were printed
    for export in ("openlongcot", "marco", "sft", "prm"):
        assert any((tmp_path / "demo" / export).glob("train-*")), export
