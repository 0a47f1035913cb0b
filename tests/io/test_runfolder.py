"""One writer per run folder: the lock names its holder, dies with it, and readers tell a
finished run from an unfinished one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cotgen.errors import DataError, RunError, UsageError
from cotgen.io.layout import COMPLETE, INTERRUPTED, RUNNING
from cotgen.io.runfolder import RunLock, check_finished, is_locked


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path: Path):
    with RunLock(tmp_path / "run") as first:
        assert first.held and is_locked(tmp_path / "run")
        with pytest.raises(UsageError) as info:
            RunLock(tmp_path / "run").acquire()
        message = str(info.value)
        assert f"pid {os.getpid()}" in message and "another cotgen process is writing" in message
        assert str(tmp_path / "run") in message
    assert not is_locked(tmp_path / "run")
    assert not (tmp_path / "run" / ".lock").exists()  # released: nothing left behind
    with RunLock(tmp_path / "run"):
        pass


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path: Path):
    code = textwrap.dedent(f"""
        import os, signal
        from cotgen.io.runfolder import RunLock
        RunLock({str(tmp_path / "run")!r}).acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (tmp_path / "run" / ".lock").exists()  # the file stays; the lock died with its holder
    assert not is_locked(tmp_path / "run")
    with RunLock(tmp_path / "run") as lock:
        assert lock.held
        assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == os.getpid()


def test_an_out_that_cannot_be_a_folder(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        RunLock(tmp_path / "file").acquire()
    with pytest.raises(RunError, match="cannot create the run folder"):
        RunLock(tmp_path / "file" / "run").acquire()


def test_check_finished(tmp_path: Path):
    run = tmp_path / "run"
    check_finished(run, {"counts": {"trees": 3}}, has_trees=True)  # no status: an older manifest
    check_finished(run, {"status": COMPLETE}, has_trees=True)
    check_finished(run, None, has_trees=False)  # an empty folder is not a run at all
    with pytest.raises(DataError, match="trees/ but no manifest.json"):
        check_finished(run, None, has_trees=True)
    with pytest.raises(DataError, match="was killed while running .3 tree.s. saved.; rerun the same synthesize"):
        check_finished(run, {"status": RUNNING, "counts": {"trees": 3}}, has_trees=True)
    with pytest.raises(DataError, match="was stopped early"):
        check_finished(run, {"status": INTERRUPTED}, has_trees=True)
    with RunLock(run), pytest.raises(DataError, match=f"being written now .pid {os.getpid()}"):
        check_finished(run, {"status": RUNNING}, has_trees=True)


def test_crash_point_kills_at_the_nth_pass(tmp_path: Path):
    code = "from cotgen.io.atomic import crash_point\nfor i in range(5):\n    print(i, flush=True)\n    crash_point('here')\n"
    env = {**os.environ, "COTGEN_CRASH_AT": "here:3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL and proc.stdout.split() == ["0", "1", "2"]
    env["COTGEN_CRASH_AT"] = "elsewhere"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["0", "1", "2", "3", "4"]


def _write(path: Path, trees) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cotgen.tree import arrow_schema

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([t.to_row() for t in trees], schema=arrow_schema()), path)


def test_reconcile_makes_the_shards_the_whole_truth(tmp_path: Path):
    from cotgen.io.runfolder import reconcile
    from cotgen.tree import Tree

    run = tmp_path / "run"
    trees = [Tree.new(f"problem {i}", str(i)) for i in range(5)]
    failed = Tree.new("problem 5", "5")
    failed.error = "DataError: the prompt is longer than the context"
    failed_then_retried = Tree.new("problem 1", "1")
    failed_then_retried.error = "DataError: a request the server refused"
    _write(run / "trees" / "part-00000.parquet", [trees[0], failed_then_retried, trees[2]])
    _write(run / "trees" / "part-00001.parquet", [trees[2], trees[3], failed])  # tree 2 twice
    _write(run / "trees" / "part-00002.parquet", [trees[0], trees[1]])  # a duplicate, and the retry of 1
    (run / "trees" / ".part-00003.parquet.tmp-4242").write_bytes(b"half")
    (run / ".manifest.json.tmp-4242").write_text("{")

    kept = reconcile(run, keep_failed=True)
    assert kept.done_ids == {t.id for t in trees[:4]} | {failed.id}
    # Tree 2's second record, tree 0's second, and the failed record of 1 its retry replaces.
    assert kept.dropped_duplicates == 3 and kept.retried_failed == 0
    assert sorted(Path(p).name for p in kept.removed_temporaries) == [".manifest.json.tmp-4242", ".part-00003.parquet.tmp-4242"]
    assert kept.shards == [{"name": "part-00000.parquet", "rows": 2, "failed": 0},
                           {"name": "part-00001.parquet", "rows": 2, "failed": 1},
                           {"name": "part-00002.parquet", "rows": 1, "failed": 0}]

    retried = reconcile(run)
    assert retried.done_ids == {t.id for t in trees[:4]} and retried.retried_failed == 1
    assert retried.dropped_duplicates == 0  # the failed record stays until its retry is written
    assert retried.shards == kept.shards
    assert not list(run.rglob("*.tmp-*"))

    _write(run / "trees" / "part-00000.parquet", [trees[0]])
    (run / "trees" / "part-00002.parquet").unlink()
    _write(run / "trees" / "part-00002.parquet", [trees[0]])  # nothing but a duplicate
    again = reconcile(run)
    assert not (run / "trees" / "part-00002.parquet").exists()  # emptied, so removed
    assert [s["name"] for s in again.shards] == ["part-00000.parquet", "part-00001.parquet"]


def test_reconcile_moves_a_shard_it_cannot_read_aside_and_names_it(tmp_path: Path):
    from cotgen.io.runfolder import reconcile

    run = tmp_path / "run"
    (run / "trees").mkdir(parents=True)
    (run / "trees" / "part-00000.parquet").write_bytes(b"PAR1 not really")
    result = reconcile(run)
    [moved] = result.damaged
    assert moved["shard"] == "part-00000.parquet" and moved["name"] == "part-00000.parquet.damaged"
    assert "part-00000.parquet: not a readable Parquet file" in moved["reason"]
    assert result.shards == [] and result.done_ids == set()
    assert [p.name for p in (run / "trees").iterdir()] == ["part-00000.parquet.damaged"]
    # a second damaged shard of the same name keeps the first one's copy
    (run / "trees" / "part-00000.parquet").write_bytes(b"PAR1 not really")
    assert reconcile(run).damaged[0]["name"] == "part-00000.parquet.damaged-2"
