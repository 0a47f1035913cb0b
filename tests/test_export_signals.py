"""A real `cotgen export` process, really signalled mid-export: SIGTERM exits 143 and Ctrl-C
130, each with one line, and no temporary file is left (even when the process started with
SIGINT ignored, as `cotgen export ... &` from a script starts it). The export is held
mid-way by the COTGEN_PAUSE_AT hook (cotgen.io.atomic.crash_point), not by timing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from small_trees import make_tree

from cotgen.io.writers import TreeShardWriter


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    TreeShardWriter(tmp_path / "run").write([make_tree(i) for i in range(4)])
    return tmp_path / "run"


def _start(run_dir: Path, out: Path, fmt: str, ignore_sigint: bool = False, *extra: str) -> subprocess.Popen:
    # Paused after its second tree, with a shard and (openlongcot) a provenance sidecar open;
    # the mark file appears once the pause has begun.
    env = {**os.environ, "COTGEN_PAUSE_AT": "export-tree-written:2", "COTGEN_PAUSE_SECONDS": "60",
           "COTGEN_PAUSE_MARK": str(_mark(out))}
    return subprocess.Popen(
        [sys.executable, "-m", "cotgen.cli.main", "export", str(run_dir), "-f", fmt, "-o", str(out),
         "--max-shard-size", "2KB", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
    )


def _temporaries(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if ".tmp-" in p.name) if out.is_dir() else []


def _mark(out: Path) -> Path:
    return out.parent / f"{out.name}.paused"


def _wait_for_temporaries(proc: subprocess.Popen, out: Path, n: int) -> None:
    """Until the export is paused (the temporaries exist trees before the pause point: a
    signal then landed at a random moment, as inside a Parquet write)."""
    deadline = time.monotonic() + 60
    while not _mark(out).exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the export did not reach its pause in time"
        time.sleep(0.02)
    assert len(_temporaries(out)) >= n, _temporaries(out)


@pytest.mark.parametrize(("fmt", "sig", "code", "ignore_sigint"), [
    ("openlongcot", signal.SIGTERM, 143, True),
    ("sft", signal.SIGTERM, 143, False),
    ("marco", signal.SIGINT, 130, False),
])
def test_a_signal_mid_export_removes_its_temporary_files(run_dir, tmp_path, fmt, sig, code, ignore_sigint):
    out = tmp_path / "out"
    proc = _start(run_dir, out, fmt, ignore_sigint)
    # a shard, and for the byte-exact formats the per-row provenance sidecar too
    _wait_for_temporaries(proc, out, 2 if fmt in ("openlongcot", "marco") else 1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: export interrupted (") and "temporary files removed" in lines[0]
    assert list(out.iterdir()) == []  # no shard, no temporary, no sidecar (and the lock released)


def test_an_interrupted_overwrite_keeps_the_shards_it_would_replace(run_dir, tmp_path):
    out = tmp_path / "out"
    first = subprocess.run([sys.executable, "-m", "cotgen.cli.main", "export", str(run_dir), "-f", "sft",
                            "-o", str(out), "--quiet"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = _start(run_dir, out, "sft", False, "--overwrite")
    _wait_for_temporaries(proc, out, 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_the_next_export_removes_sidecar_temporaries_a_killed_one_left(cli, run_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("._train.provenance.jsonl.tmp-424242", "._train.provenance.json.tmp-7", ".train-00000.parquet.tmp-9"):
        (out / name).write_text("half")
    r = cli("export", run_dir, "-f", "openlongcot", "-o", out)
    assert r.code == 0, r.err
    assert _temporaries(out) == []


def test_a_signal_after_the_renames_says_the_export_is_there(run_dir, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "COTGEN_PAUSE_AT": "export-published", "COTGEN_PAUSE_SECONDS": "60",
           "COTGEN_PAUSE_MARK": str(_mark(out))}
    proc = subprocess.Popen([sys.executable, "-m", "cotgen.cli.main", "export", str(run_dir), "-f", "sft", "-o", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_temporaries(proc, out, 0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("error: export interrupted (SIGTERM) as it finished")
    assert sorted(p.name for p in out.glob("*.parquet")) == ["train-00000-of-00001.parquet"]
    assert _temporaries(out) == []


@pytest.mark.parametrize(("command", "sig", "code", "ignore_sigint"), [
    ("dedupe", signal.SIGTERM, 143, True),
    ("decontaminate", signal.SIGTERM, 143, False),
    ("view", signal.SIGTERM, 143, True),
    ("dedupe", signal.SIGINT, 130, False),
])
def test_a_signal_mid_build_leaves_no_staging_folder(run_dir, tmp_path, command, sig, code, ignore_sigint):
    """dedupe, decontaminate and view build their output in a hidden folder beside --out;
    SIGTERM killed them where they stood and left it (the next run removed it)."""
    out = tmp_path / "out"
    extra = {"decontaminate": ["--against", "gsm8k"], "dedupe": [], "view": []}[command]
    env = {**os.environ, "COTGEN_PAUSE_AT": "staging-made", "COTGEN_PAUSE_SECONDS": "60",
           "COTGEN_PAUSE_MARK": str(_mark(out))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cotgen.cli.main", command, str(run_dir), "--out", str(out), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
    )
    deadline = time.monotonic() + 60
    while not _mark(out).exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{command} did not reach its pause in time"
        time.sleep(0.02)
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name]  # the staging folder, mid-build
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"({signal.Signals(sig).name})" in lines[0], err
    assert "Traceback" not in err
    assert not [p.name for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert not out.exists() or list(out.iterdir()) == []
