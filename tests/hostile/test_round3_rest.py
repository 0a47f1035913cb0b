"""Hostile inputs, round 3 (issue 19), the items after the first four: tracebacks (11),
quadratic time (12), grading without a time bound (13), a poison problem (7), negative node
ids (10), the Marco-o1 round trip (5), two exports at once (8), published local paths (4)
and the smaller ones. Inputs that every reading command must survive are in corpus.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from corpus import good_tree, run_folder  # noqa: E402
from test_defects import error_line, no_traceback  # noqa: E402

# 11: tracebacks --------------------------------------------------------------------------


def test_one_row_with_a_5000_digit_id_is_that_rows_error(cli, tmp_path: Path):
    from corpus import five_thousand_digit_local_id

    path = five_thousand_digit_local_id(tmp_path)
    r = cli("validate", path, "--json")
    report = json.loads(r.out)
    assert r.code == 1 and report["rows"] == 2 and report["valid_rows"] == 1, report
    (finding,) = [e for e in report["errors"] if e["severity"] == "error"]
    assert finding["row"] == 0 and "local id of 5000 digits" in finding["message"]


def test_out_through_a_symlink_loop_is_refused_by_every_writer(cli, tmp_path: Path):
    src = run_folder(tmp_path / "run")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for args in (("dedupe", src, "-o", loop), ("export", src, "-f", "sft", "-o", loop),
                 ("view", src, "-o", loop), ("model", "tiny", "--out", loop)):
        r = cli(*args)
        assert r.code == 2, (args, r.err)
        error_line(r, str(loop), "leads nowhere")
        assert "File exists" not in r.err
    # A loop further up the path.
    r = cli("dedupe", src, "-o", loop / "sub")
    assert r.code in (1, 2), r.err
    error_line(r, str(loop))


def _fill(disk: Path, leave: int) -> None:
    """Fill the tmpfs `disk` until about `leave` bytes are free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def test_a_full_disk_in_model_tiny_is_a_clear_error(cli, small_disk: Path, monkeypatch):
    # The weights (~0.4 MB) are written by safetensors, which raises its own SafetensorError.
    _fill(small_disk, 64 * 1024)
    r = cli("model", "tiny", "--out", small_disk / "m")
    assert r.code == 1, r.err
    error_line(r, str(small_disk / "m"), "cannot write the tiny model")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
    monkeypatch.setenv("COTGEN_CACHE", str(small_disk / "cache"))
    r = cli("model", "tiny")
    assert r.code == 1, r.err
    error_line(r, str(small_disk / "cache"), "COTGEN_CACHE")


def test_a_full_disk_in_view_names_the_site(cli, tmp_path: Path, small_disk: Path):
    src = run_folder(tmp_path / "run", n=20)
    _fill(small_disk, 8 * 1024)
    r = cli("view", src, "-o", small_disk / "site")
    assert r.code == 1, r.err
    line = error_line(r, "No space left on device")
    assert "(no file name)" not in line and str(small_disk) in line
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
