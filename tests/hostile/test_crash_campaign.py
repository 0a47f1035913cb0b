"""The crash campaign: a small real run on the tiny model, killed at many moments, then rerun.

SIGKILL at ten moments spread over a run (the exact ones are forced with the
COTGEN_CRASH_AT test hook, cotgen.io.atomic.crash_point: it kills the process at the N-th
pass of a named point, e.g. between a shard's rename and the manifest write); SIGTERM
and SIGINT; two writers on one folder; a disk that fills up. After each, a rerun of the
same command completes, and then: every problem has exactly one tree, no tree id twice,
the manifest lists exactly the shards on disk with their counts, no temporary file is
left, the run is marked complete and `cotgen validate` passes.
"""

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
from cotgen.problems import load_problems
from cotgen.tree import tree_id

pytestmark = pytest.mark.slow

LIMIT = 6
ARGS = ["--problems", "builtin:arith", "--limit", str(LIMIT), "--simulations", "3", "--branch", "2",
        "--max-depth", "3", "--max-step-tokens", "6", "--max-tokens", "24", "--concurrency", "2", "--shard-trees", "2",
        "--max-batch", "8", "--quiet"]


def expected_ids() -> set[str]:
    return {tree_id(p.question, p.answer) for p in load_problems("builtin:arith", limit=LIMIT).problems}


def start(model: Path, out: Path, crash_at: str | None = None, pause_at: str | None = None,
          pause_s: float = 15) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for name in ("COTGEN_CRASH_AT", "COTGEN_PAUSE_AT"):
        env.pop(name, None)
    if crash_at:
        env["COTGEN_CRASH_AT"] = crash_at
    if pause_at:
        env.update(COTGEN_PAUSE_AT=pause_at, COTGEN_PAUSE_SECONDS=str(pause_s))
    return subprocess.Popen(
        [sys.executable, "-m", "cotgen.cli.main", "synthesize", "--model", str(model), "--out", str(out), *ARGS],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def wait_for_shards(proc: subprocess.Popen, out: Path, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(shard_paths(out)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no shard appeared in time"
        time.sleep(0.02)


def check_complete(out: Path) -> None:
    """The state every crash must end in once rerun: nothing lost, nothing doubled."""
    ids = [t.id for t in iter_input_trees(shard_paths(out))]
    assert len(ids) == len(set(ids)), "a tree id twice"
    assert set(ids) == expected_ids(), "a problem without its tree"
    manifest = read_manifest(out)
    assert manifest["status"] == "complete"
    assert [s["name"] for s in manifest["shards"]] == [p.name for p in shard_paths(out)]
    assert manifest["counts"]["trees"] == len(ids) == sum(s["rows"] for s in manifest["shards"])
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "a temporary file left"
    proc = subprocess.run([sys.executable, "-m", "cotgen.cli.main", "validate", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def check_consistent_after_crash(out: Path) -> None:
    """Right after a crash: shards under final names are complete and hold no tree twice."""
    if not shard_paths(out):
        return
    ids = [t.id for t in iter_input_trees(shard_paths(out))]
    assert len(ids) == len(set(ids))


def rerun_completes(model: Path, out: Path) -> None:
    code, err = finish(start(model, out))
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
    check_complete(out)


# Ten moments to die at, spread over a run (point[:N] = the N-th time the run passes it).
KILL_MOMENTS = [
    "lock-taken",  # owns the folder, nothing written yet
    "engine-built",  # model loaded, no tree started
    "tree-finished:3",  # trees done but still in memory
    "shard-tmp-written:1",  # the first shard complete under its temporary name
    "shard-renamed:1",  # between the first shard's rename and the manifest write
    "manifest-written:3",  # mid-run, right after a manifest write
    "shard-renamed:3",  # between a later rename and its manifest write
    "final-flush",  # every tree searched, the last shard not yet written
    "run-complete",  # the run marked complete, the lock not yet released
    "reconciled",  # a resume killed right after reconciling an earlier crash
]


@pytest.mark.parametrize("moment", KILL_MOMENTS)
def test_sigkill_then_rerun(moment: str, tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    if moment == "reconciled":
        code, _ = finish(start(tiny_model_dir, out, "shard-renamed:2"))
        assert code == -signal.SIGKILL
    code, err = finish(start(tiny_model_dir, out, moment))
    assert code == -signal.SIGKILL, (code, err[-3000:])
    check_consistent_after_crash(out)
    rerun_completes(tiny_model_dir, out)


def test_sigkill_at_a_random_moment_with_trees_in_flight(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    proc = start(tiny_model_dir, out)
    wait_for_shards(proc, out, 1)
    proc.kill()
    proc.communicate(timeout=60)
    check_consistent_after_crash(out)
    rerun_completes(tiny_model_dir, out)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_term_and_ctrl_c_save_finished_trees(sig, code, tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    # The tiny model searches the 6 trees within ~0.2 s of the first shard: a signal sent
    # a little late found the run finished (exit 0, or -15 on its way out). Paused after
    # its first manifest write, the run is surely mid-way when the signal comes, and stops
    # once the pause is over.
    proc = start(tiny_model_dir, out, pause_at="manifest-written:1", pause_s=5)
    wait_for_shards(proc, out, 1)
    proc.send_signal(sig)
    got, err = finish(proc, timeout=120)
    assert got == code, (got, err[-3000:])
    assert "Traceback" not in err and "saved" in err and "run the same command again" in err
    saved = [t.id for t in iter_input_trees(shard_paths(out))]
    assert len(saved) >= 2 and len(saved) == len(set(saved))
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted" and manifest["counts"]["trees"] == len(saved)
    # Unfinished: readers refuse the folder and say what to do.
    proc = subprocess.run([sys.executable, "-m", "cotgen.cli.main", "validate", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "unfinished run folder" in proc.stderr
    rerun_completes(tiny_model_dir, out)


def test_two_writers_on_one_folder(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    # The first writer pauses after its first shard (a test hook), so it is surely alive
    # and holding the folder while the second starts.
    first = start(tiny_model_dir, out, pause_at="manifest-written:1")
    wait_for_shards(first, out, 1)
    second = start(tiny_model_dir, out)
    code, err = finish(second)
    assert code == 2, err[-3000:]
    assert f"pid {first.pid}" in err and "another cotgen process is writing" in err
    assert first.poll() is None
    code, err = finish(first)
    assert code == 0, err[-3000:]
    check_complete(out)
    # Started together: exactly one runs, the other is refused at once.
    out2 = tmp_path / "run2"
    a = start(tiny_model_dir, out2, pause_at="lock-taken")
    b = start(tiny_model_dir, out2, pause_at="lock-taken")
    results = sorted([finish(a)[0], finish(b)[0]])
    assert results == [0, 2], results
    check_complete(out2)


def test_disk_full_then_rerun(tiny_model_dir: Path, small_disk: Path):
    out = small_disk / "run"
    filler = small_disk / "filler"
    # Leave room for the lock, the manifest and about one shard, then the disk is full.
    with open(filler, "wb") as f:
        f.write(b"\0" * (4 * 1024 * 1024 - 28 * 1024))
    code, err = finish(start(tiny_model_dir, out))
    assert code == 1, err[-3000:]
    assert "Traceback" not in err and "No space left on device" in err
    assert str(out) in err
    check_consistent_after_crash(out)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "a temporary file left on the full disk"
    filler.unlink()
    rerun_completes(tiny_model_dir, out)
