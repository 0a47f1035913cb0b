"""`cotgen synthesize --engine vllm` as a real process, really signalled: Ctrl-C (SIGINT
through Popen) exits 130 with the finished trees saved, no traceback, no vLLM log noise
under --quiet, and no process of the engine left behind.

Run with `make test-vllm` (.venv-vllm); skipped where vLLM is not installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="needs vLLM (CPU build: make vllm-env; run with make test-vllm)")

from vllm_fixtures import START_TIMEOUT_S, engine_processes, wait_gone  # noqa: E402

from cotgen.io.layout import read_manifest, shard_paths  # noqa: E402
from cotgen.io.trees import iter_input_trees as iter_trees  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

LIMIT = 40
ARGS = ["--engine", "vllm", "--problems", "builtin:arith", "--limit", str(LIMIT), "--simulations", "4",
        "--branch", "2", "--max-depth", "4", "--max-step-tokens", "8", "--max-tokens", "24", "--concurrency", "2",
        "--shard-trees", "1", "--max-batch", "8", "--quiet"]


def test_ctrl_c_exits_130_with_finished_trees_saved(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("VLLM_LOGGING_LEVEL", None)  # --quiet alone must silence vLLM
    # The run pauses 5 s after recording its second shard (a test hook), so the signal surely
    # finds it mid-way: sent a moment late on a busy machine, it could find the 40 trees done.
    env.update(COTGEN_PAUSE_AT="manifest-written:2", COTGEN_PAUSE_SECONDS="5")
    env.pop("COTGEN_CRASH_AT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cotgen.cli.main", "synthesize", "--model", str(tiny_model_dir), "--out", str(out), *ARGS],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(shard_paths(out)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no shard appeared in time"
            time.sleep(0.2)
        spawned = engine_processes(proc.pid)
        assert spawned  # vLLM's engine core
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert "run the same command again" in err
    assert " INFO " not in err, err  # --quiet: none of vLLM's ~100 INFO lines
    # An interrupted run folder is refused by readers until a rerun finishes it; its shards
    # given by name are read as they are.
    saved = list(iter_trees(shard_paths(out)))
    assert 2 <= len(saved) < LIMIT and len({t.id for t in saved}) == len(saved)
    for t in saved:
        t.check()
        assert t.error is None
    manifest = read_manifest(out)
    assert manifest["counts"] == {"trees": len(saved), "failed": 0} and manifest["status"] == "interrupted"
    assert wait_gone(spawned, timeout=60) == set()
