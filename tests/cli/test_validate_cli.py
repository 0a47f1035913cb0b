"""`cotgen validate`: exit codes, per-row messages, --json lines, and the real fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from small_trees import make_tree

from cotgen.formats import make_format
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree


def ol_row(i: int) -> str:
    return next(make_format("openlongcot", separator=" ").export(make_tree(i)))["text"]


def test_valid_files_exit_0_with_a_summary_table(cli, tmp_path: Path):
    pq.write_table(pa.table({"text": [ol_row(i) for i in range(4)]}), tmp_path / "a.parquet")
    TreeShardWriter(tmp_path / "run").write([make_tree(i) for i in range(3)])
    r = cli("validate", tmp_path / "a.parquet", tmp_path / "run")
    assert r.code == 0, r.err
    assert r.out == ""
    for header in ("file", "format", "rows", "valid", "errors", "warnings"):
        assert header in r.err
    assert "openlongcot" in r.err and "trees" in r.err


def test_json_is_one_object_per_file(cli, tmp_path: Path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text(ol_row(1) + "\n")
    bad.write_text(ol_row(1) + "\n" + ol_row(2).replace("<start_of_local_id>2<", "<start_of_local_id>two<") + "\n")
    r = cli("validate", good, bad, "--json")
    assert r.code == 1
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(bad)]
    assert lines[0] == {"file": str(good), "format": "openlongcot", "rows": 1, "valid_rows": 1, "errors": [],
                        "error_count": 0, "warning_count": 0}
    (e,) = lines[1]["errors"]
    assert (e["row"], e["severity"]) == (1, "error")
    assert e["offset"] == ol_row(2).index("<start_of_local_id>2<") + len("<start_of_local_id>")
    # The same finding on stderr: file, row, char offset, what was expected.
    assert f"{bad}: row 1, char {e['offset']}: error: " in r.err


def test_warnings_alone_exit_0(cli, tmp_path: Path):
    p = tmp_path / "w.txt"
    p.write_text(ol_row(1).replace("What", "Wh\ufffdat") + "\n", encoding="utf-8")
    r = cli("validate", p, "--json")
    assert r.code == 0
    (report,) = [json.loads(x) for x in r.out.splitlines()]
    assert report["valid_rows"] == 1 and report["errors"][0]["severity"] == "warning"


def test_format_option_and_max_errors(cli, tmp_path: Path):
    p = tmp_path / "junk.jsonl"
    p.write_text("".join(json.dumps({"text": f"junk {i}"}) + "\n" for i in range(20)))
    r = cli("validate", p, "--format", "openlongcot", "--max-errors", "3")
    assert r.code == 1
    assert r.err.count(": error: ") == 3
    assert "17 more finding(s)" in r.err
    r = cli("validate", p, "--format", "marco", "--json", "-q")
    assert r.code == 1 and json.loads(r.out)["format"] == "marco"
    assert r.err == ""


# -- acceptance on the real files in ../shared -----------------------------------------


def test_marco_cot_demo_reports_exactly_the_known_records(cli, shared: Path):
    r = cli("validate", shared / "fixtures" / "marco_cot_demo.json", "--json")
    assert r.code == 1
    (report,) = [json.loads(x) for x in r.out.splitlines()]
    assert report["format"] == "marco" and report["rows"] == 125
    errors = [e["row"] for e in report["errors"] if e["severity"] == "error"]
    warnings = [e["row"] for e in report["errors"] if e["severity"] == "warning"]
    assert errors == [8, 109]
    assert warnings == [1, 23, 59, 72, 112]
    assert all("</Output>" in e["message"] for e in report["errors"] if e["severity"] == "error")


def test_seed_row_validates(cli, shared: Path):
    r = cli("validate", shared / "fixtures" / "openlongcot_seed_row.txt")
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    ("bug", "named"),
    [
        ("nested_root", "double-wrapped root"),
        ("duplicate_id", "duplicate local id 3"),
        ("unknow_rating", "<unknow_rating>"),
    ],
)
def test_llama_o1_bugs_are_named(cli, shared: Path, tmp_path: Path, bug: str, named: str):
    seed = (shared / "fixtures" / "openlongcot_seed_row.txt").read_text(encoding="utf-8").rstrip("\n")
    root_end = seed.index("<end_of_thought>") + len("<end_of_thought>")
    if bug == "nested_root":
        # LLaMA-O1 wrapped the whole root record again inside the root's thought.
        row = seed[: seed.index("<problem>")] + seed[:root_end] + seed[root_end:]
    elif bug == "duplicate_id":
        row = seed.replace("<start_of_local_id>4<", "<start_of_local_id>3<")
    else:
        row = seed.replace("<unknown_rating>", "<unknow_rating>", 1)
    path = tmp_path / f"{bug}.txt"
    path.write_text(row + "\n", encoding="utf-8")
    r = cli("validate", path, "--json")
    assert r.code == 1
    (report,) = [json.loads(x) for x in r.out.splitlines()]
    (e,) = [e for e in report["errors"] if e["severity"] == "error"]
    assert e["row"] == 0 and named in e["message"] and "LLaMA-O1" in e["message"]
    assert isinstance(e["offset"], int)
    assert f"{path}: row 0, char {e['offset']}: error: " in r.err


def test_an_export_folder_is_validated_shard_by_shard(cli, tmp_path: Path):
    from cotgen.export import export
    from cotgen.formats import make_format
    from cotgen.io.writers import TreeShardWriter

    trees = []
    for i in range(4):
        t = Tree.new(f"What is {i}?", str(i))
        t.add(0, "conclusion", f"\\boxed{{{i}}}", terminal=True, correct=True, rating="positive")
        trees.append(t)
    TreeShardWriter(tmp_path / "run").write(trees)
    export([tmp_path / "run"], make_format("openlongcot"), tmp_path / "ol", max_shard_size="2KB")
    r = cli("validate", tmp_path / "ol", "--json")
    assert r.code == 0, r.err
    reports = [json.loads(line) for line in r.out.splitlines()]
    assert len(reports) > 1 and sum(rep["rows"] for rep in reports) == 4
    (tmp_path / "empty").mkdir()
    r = cli("validate", tmp_path / "empty")
    assert r.code == 2 and "not a run folder" in r.err and "no exported shards" in r.err
