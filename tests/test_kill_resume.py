"""A real process, really signalled: Ctrl-C exits 130 with finished trees saved, SIGTERM 143
even when the process started with SIGINT ignored, kill -9 loses at most the trees in flight,
and a rerun finishes the run with no duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cotgen.io.layout import read_manifest, shard_paths
from cotgen.io.trees import iter_input_trees

pytestmark = pytest.mark.slow

LIMIT = 10
# The interrupted run has far more problems than it could finish between its second shard and
# the signal, and it pauses after recording that shard (a test hook) until the signal is
# surely there: the tiny model searches a tree in tens of milliseconds, so on a busy machine
# a signal sent a moment late could otherwise find the run finished.
INTERRUPTED_LIMIT = 40
PAUSE_S = 5
ARGS = ["--problems", "builtin:arith", "--simulations", "4", "--branch", "2",
        "--max-depth", "4", "--max-step-tokens", "8", "--max-tokens", "24", "--concurrency", "2", "--shard-trees", "1",
        "--max-batch", "8", "--quiet"]


def start(model: Path, out: Path, limit: int = LIMIT, ignore_sigint: bool = False,
          pause_at: str | None = None) -> subprocess.Popen:
    """`cotgen synthesize`; with `ignore_sigint`, as `cotgen ... &` starts it from a script
    (or a supervisor does): SIGINT ignored from the start. With `pause_at`, the run sleeps
    PAUSE_S there (cotgen.io.atomic.crash_point), so a signal sent meanwhile surely finds it
    mid-way (it stops once the pause is over)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("COTGEN_CRASH_AT", None)
    env.pop("COTGEN_PAUSE_AT", None)
    if pause_at:
        env.update(COTGEN_PAUSE_AT=pause_at, COTGEN_PAUSE_SECONDS=str(PAUSE_S))
    return subprocess.Popen(
        [sys.executable, "-m", "cotgen.cli.main", "synthesize", "--model", str(model), "--out", str(out),
         "--limit", str(limit), *ARGS],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
    )


def wait_for_shards(proc: subprocess.Popen, out: Path, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(shard_paths(out)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no shard appeared in time"
        time.sleep(0.05)


def rerun_completes(model: Path, out: Path, limit: int = LIMIT) -> None:
    proc = start(model, out, limit)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    ids = [t.id for t in iter_input_trees([out])]
    assert len(ids) == len(set(ids)) == limit
    assert read_manifest(out)["counts"]["trees"] == limit


def test_ctrl_c_exits_130_and_a_rerun_completes(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    proc = start(tiny_model_dir, out, INTERRUPTED_LIMIT, pause_at="manifest-written:2")
    wait_for_shards(proc, out, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again" in err
    saved = [t.id for t in iter_input_trees(shard_paths(out))]
    assert 2 <= len(saved) < INTERRUPTED_LIMIT and len(saved) == len(set(saved))
    assert read_manifest(out)["counts"]["trees"] == len(saved)
    rerun_completes(tiny_model_dir, out, INTERRUPTED_LIMIT)


def test_sigterm_exits_143_when_sigint_is_ignored(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    proc = start(tiny_model_dir, out, INTERRUPTED_LIMIT, ignore_sigint=True, pause_at="manifest-written:2")
    wait_for_shards(proc, out, 2)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"SIGTERM did not stop the run:\n{proc.communicate()[1][-3000:]}")
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "interrupted (SIGTERM)" in err and "run the same command again" in err
    saved = [t.id for t in iter_input_trees(shard_paths(out))]
    assert 2 <= len(saved) < INTERRUPTED_LIMIT and len(saved) == len(set(saved))
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted" and manifest["counts"]["trees"] == len(saved)
    assert sorted(s["name"] for s in manifest["shards"]) == sorted(p.name for p in shard_paths(out))


def test_kill_9_loses_only_trees_in_flight(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    proc = start(tiny_model_dir, out)
    wait_for_shards(proc, out, 3)
    proc.kill()
    proc.communicate(timeout=60)
    # Whatever moment the kill hit, every shard under a final name is complete and readable.
    saved = [t.id for t in iter_input_trees(shard_paths(out))]
    assert len(saved) >= 3 and len(saved) == len(set(saved))
    rerun_completes(tiny_model_dir, out)
