"""`cotgen view`: exit codes, messages, and the inputs it reads (as export does)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cotgen.formats.openlongcot import OpenLongCoTFormat
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree


def tree(i: int) -> Tree:
    t = Tree.new(f"What is {i} + {i}?", str(2 * i))
    s = t.add(0, "step", f"{i} + {i} = {2 * i}.", value=0.8, visits=2, rating="positive")
    t.add(s.id, "conclusion", f"\\boxed{{{2 * i}}}", terminal=True, correct=True, value=1.0, visits=1)
    return t


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    TreeShardWriter(tmp_path / "run").write([tree(i) for i in range(3)])
    return tmp_path / "run"


def test_view_writes_a_site_and_says_where(cli, run_dir: Path, tmp_path: Path):
    r = cli("view", run_dir, "--out", tmp_path / "site", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["pages"] == 3 and summary["nodes"] == 9 and summary["skipped"] == {}
    assert f"open {tmp_path / 'site' / 'index.html'}" in r.err
    assert (tmp_path / "site" / "trees" / "00002.html").is_file()
    # a second run needs --overwrite
    r = cli("view", run_dir, "--out", tmp_path / "site")
    assert r.code == 2 and "--overwrite" in r.err
    r = cli("view", run_dir, "--out", tmp_path / "site", "--overwrite", "--quiet")
    assert r.code == 0 and r.err == ""


def test_view_reads_openlongcot_rows_and_counts_bad_ones(cli, tmp_path: Path):
    rows = [{"id": f"t{i}", "text": next(iter(OpenLongCoTFormat().export(tree(i))))["text"], "answer": str(2 * i)}
            for i in range(2)]
    path = tmp_path / "olc.jsonl"
    path.write_text("\n".join([json.dumps(rows[0]), json.dumps({"text": "not a tree"}), json.dumps(rows[1])]) + "\n")
    r = cli("view", path, "--out", tmp_path / "site", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["pages"] == 2 and summary["rows_read"] == 3 and sum(summary["skipped"].values()) == 1
    assert "skipped 1 row(s): not valid OpenLongCoT" in r.err and f"{path}: row 1" in r.err
    assert "t1" in (tmp_path / "site" / "trees" / "00001.html").read_text()


def test_view_reads_the_openlongcot_seed_row(cli, shared: Path, tmp_path: Path):
    r = cli("view", shared / "fixtures" / "openlongcot_seed_row.txt", "--out", tmp_path / "site", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["pages"] == 1
    assert "Felix" in (tmp_path / "site" / "index.html").read_text()


def test_view_reads_the_marco_fixture_and_counts_its_truncated_records(cli, shared: Path, tmp_path: Path):
    path = shutil.copy(shared / "fixtures" / "marco_cot_demo.json", tmp_path / "m.json")
    r = cli("view", path, "--out", tmp_path / "site", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert (summary["pages"], summary["rows_read"]) == (123, 125)
    assert summary["skipped"] == {"not a valid Marco-o1 record: truncated: no </Output>": 2}
    assert f"{path}: row 8: not a valid Marco-o1 record" in r.err and "Traceback" not in r.err
    assert "House of Lords" in (tmp_path / "site" / "index.html").read_text()
    assert (tmp_path / "site" / "trees" / "00122.html").is_file()


def test_inspect_and_stats_read_a_marco_file_as_view_does(cli, shared: Path):
    path = shared / "fixtures" / "marco_cot_demo.json"
    r = cli("inspect", path, "--row", 0, "--width", 300)
    assert r.code == 0, r.err
    assert "House of Lords" in r.out and "conclusion" in r.out
    r = cli("stats", path, "--json")
    assert r.code == 0, r.err
    stats = json.loads(r.out)
    assert (stats["trees"], stats["correct_leaves"]) == (123, 123)
    r = cli("inspect", path, "--row", 8)
    assert r.code != 0 and f"{path}: row 8: not a valid Marco-o1 record: truncated" in r.err


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda tmp, shared: tmp / "missing", "no such file or folder"),
        (lambda tmp, shared: _write(tmp / "dpo.jsonl", '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'), "do not carry whole trees"),
    ],
)
def test_view_refuses_inputs_without_trees(cli, shared: Path, tmp_path: Path, make_input, message):
    r = cli("view", make_input(tmp_path, shared), "--out", tmp_path / "site")
    assert r.code == 2 and message in r.err, r.err
    assert not (tmp_path / "site").exists()


def test_view_will_not_write_into_a_foreign_folder(cli, run_dir: Path, tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("mine")
    r = cli("view", run_dir, "--out", tmp_path / "docs", "--overwrite")
    assert r.code == 2 and "not made by cotgen view" in r.err
    assert (tmp_path / "docs" / "notes.md").read_text() == "mine"


def test_view_without_out_is_a_usage_error(cli, run_dir: Path):
    r = cli("view", run_dir)
    assert r.code == 2 and "--out" in r.err
