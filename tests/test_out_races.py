"""`dedupe` and `view` build their --out in a hidden folder and rename it into place at the
end. Another writer (a run, an export) that starts writing into the same --out meanwhile must
keep its files: the late rename is refused with a message, never a traceback, never a
deletion. The other writer is simulated at the one moment that matters, just before the
rename (deterministic, no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from small_trees import make_tree

import cotgen.dedupe
import cotgen.view.site
from cotgen.io.runfolder import RunLock
from cotgen.io.writers import TreeShardWriter


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    TreeShardWriter(tmp_path / "run").write([make_tree(i) for i in range(3)])
    return tmp_path / "run"


def _other_writer_starts(out: Path) -> RunLock:
    """What a run or an export does first in its --out: create it and take the lock."""
    lock = RunLock(out)
    lock.acquire()
    (out / "trees").mkdir(exist_ok=True)
    (out / "trees" / "theirs.parquet").write_bytes(b"their data")
    return lock


def test_dedupe_refuses_to_rename_over_a_folder_another_writer_started(cli, run_dir, tmp_path, monkeypatch):
    out = tmp_path / "deduped"
    original = cotgen.dedupe._dedupe_into
    holder: list[RunLock] = []

    def meanwhile(inp, staging, settings):
        report = original(inp, staging, settings)
        holder.append(_other_writer_starts(out))
        return report

    monkeypatch.setattr(cotgen.dedupe, "_dedupe_into", meanwhile)
    try:
        r = cli("dedupe", run_dir, "--out", out)
        assert r.code == 2, r.err
        assert f"--out {out}" in r.err and "another writer" in r.err and "Traceback" not in r.err
        assert (out / "trees" / "theirs.parquet").read_bytes() == b"their data"
        assert not list(tmp_path.glob(".deduped.partial-*"))  # the staging folder is gone
    finally:
        for lock in holder:
            lock.release()


def test_view_refuses_to_replace_a_folder_another_writer_started(cli, run_dir, tmp_path, monkeypatch):
    out = tmp_path / "site"
    original = cotgen.view.site._replace
    holder: list[RunLock] = []

    def meanwhile(tmp, target, overwrite):
        holder.append(_other_writer_starts(target))
        return original(tmp, target, overwrite)

    monkeypatch.setattr(cotgen.view.site, "_replace", meanwhile)
    try:
        r = cli("view", run_dir, "--out", out)
        assert r.code == 2, r.err
        assert f"--out {out}" in r.err and "Traceback" not in r.err
        # before: the other writer's folder was moved aside and deleted
        assert (out / "trees" / "theirs.parquet").read_bytes() == b"their data"
        assert not list(tmp_path.glob(".site.*"))  # no partial site, no moved-aside folder
    finally:
        for lock in holder:
            lock.release()


def test_view_still_replaces_its_own_site_with_overwrite(cli, run_dir, tmp_path):
    out = tmp_path / "site"
    assert cli("view", run_dir, "--out", out).code == 0
    (out / "stale.html").write_text("old")
    r = cli("view", run_dir, "--out", out, "--overwrite")
    assert r.code == 0, r.err
    assert not (out / "stale.html").exists() and (out / "index.html").is_file()
