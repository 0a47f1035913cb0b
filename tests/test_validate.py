"""validate: format detection, per-row findings, reports, and streaming by batch."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from small_trees import make_tree

from cotgen.errors import DataError, UsageError
from cotgen.formats import make_format
from cotgen.io import readers
from cotgen.io.readers import TREES, match_format, open_rows
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import arrow_schema
from cotgen.validate import iter_findings, validate_path, validate_paths


def ol_rows(n: int, separator: str = " ") -> list[str]:
    fmt = make_format("openlongcot", separator=separator)
    return [next(fmt.export(make_tree(i)))["text"] for i in range(n)]


def test_detects_each_format_by_its_columns(tmp_path: Path):
    assert match_format(["text", "id", "problem", "answer"]) == "openlongcot"
    assert match_format(["id", "problem", "nodes", "stats"]) == TREES
    assert match_format(["instruction", "response"]) == "marco"
    assert match_format(["messages"]) == "sft"
    assert match_format(["prompt", "completions", "labels"]) == "prm"
    assert match_format(["prompt", "chosen", "rejected"]) == "dpo"
    assert match_format(["prompt", "chosen"]) is None
    # Files: .txt is OpenLongCoT, .jsonl by the first object's keys, .json through the Marco reader.
    (tmp_path / "a.txt").write_text(ol_rows(1)[0] + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    (tmp_path / "c.json").write_text(json.dumps([{"instruction": "i", "response": "r"}]))
    (tmp_path / "d.json").write_text(json.dumps([{"messages": []}]))
    TreeShardWriter(tmp_path / "run").write([make_tree(1)])
    found = {p.name: open_rows(p).format for p in [*tmp_path.glob("*.*"), *(tmp_path / "run" / "trees").glob("*")]}
    assert found == {"a.txt": "openlongcot", "b.jsonl": "dpo", "c.json": "marco", "d.json": "sft", "part-00000.parquet": TREES}
    # Without a known extension the content decides.
    (tmp_path / "noext").write_text(ol_rows(1)[0])
    assert open_rows(tmp_path / "noext").format == "openlongcot"


def test_openlongcot_parquet_findings_carry_row_and_offset(tmp_path: Path):
    rows = ol_rows(5)
    rows[1] = rows[1].replace("<unknown_rating>", "<unknow_rating>")
    at = rows[3].index("What is") + 4
    rows[3] = rows[3][:at] + "\ufffd" + rows[3][at:]
    pq.write_table(pa.table({"text": rows, "id": [str(i) for i in range(5)]}), tmp_path / "x.parquet")
    report = validate_path(tmp_path / "x.parquet")
    assert (report.format, report.rows, report.valid_rows, report.error_count, report.warning_count) == ("openlongcot", 5, 4, 1, 1)
    err, warn = report.errors
    assert err["row"] == 1 and err["severity"] == "error" and "unknow_rating" in err["message"]
    assert err["offset"] == rows[1].index("<unknow_rating>")
    assert warn == {"row": 3, "severity": "warning", "message": warn["message"], "offset": at}
    assert "U+FFFD" in warn["message"]


def test_tree_shards_are_checked_against_the_invariants(tmp_path: Path):
    good, bad = make_tree(1), make_tree(2)
    bad.nodes[3].parent = 1  # a refine whose parent is a step, not a critic
    bad.nodes[1].correct = True  # 'correct' on a node that is not terminal
    failed = make_tree(3)
    failed.error = "engine died"
    path = TreeShardWriter(tmp_path / "run").write([good, bad, failed])
    report = validate_path(path)
    assert report.format == TREES
    assert (report.rows, report.valid_rows, report.error_count, report.warning_count) == (3, 2, 2, 1)
    messages = [(e["row"], e["severity"], e["message"]) for e in report.errors]
    assert (1, "error", "node 3: a refine node's parent must be a critic, not 'step'") in messages
    assert (1, "error", "node 1: 'correct' is set on a node that is not terminal") in messages
    assert (2, "warning", "the search failed for this tree: engine died") in messages
    # A run folder expands to its shards.
    assert [r.file for r in validate_paths([tmp_path / "run"])] == [str(path)]


def test_a_row_that_is_not_a_tree_record(tmp_path: Path):
    row = make_tree(1).to_row()
    row["nodes"] = None
    table = pa.Table.from_pylist([row], schema=arrow_schema())
    pq.write_table(table, tmp_path / "t.parquet")
    (e,) = validate_path(tmp_path / "t.parquet").errors
    assert e["row"] == 0 and e["severity"] == "error"
    assert e["message"].startswith("not a tree record (TypeError")


def test_txt_and_jsonl_rows_are_numbered_by_line(tmp_path: Path):
    rows = ol_rows(3)
    path = tmp_path / "r.txt"
    path.write_bytes(f"{rows[0]}\n\n{rows[1]}\nnonsense\n".encode() + b"\xc3\x28 bad\n" + rows[2].encode())
    report = validate_path(path)
    assert (report.rows, report.valid_rows) == (5, 3)
    assert [(e["row"], e["message"][:20]) for e in report.errors] == [
        (3, "expected <start_of_f"),
        (4, "line 5: invalid UTF-"),
    ]
    jl = tmp_path / "r.jsonl"
    jl.write_text(json.dumps({"text": rows[0]}) + "\n[1, 2]\n{broken\n")
    report = validate_path(jl)
    assert report.format == "openlongcot"
    assert [(e["row"], e["message"]) for e in report.errors] == [
        (1, "line 2: a JSON list, expected an object"),
        (2, "line 3: not valid JSON (char 1: Expecting property name enclosed in double quotes)"),
    ]


def test_max_errors_caps_the_list_not_the_counts(tmp_path: Path):
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(f"junk {i}" for i in range(300)) + "\n")
    report = validate_path(path, max_errors=7)
    assert (report.rows, report.valid_rows, report.error_count, len(report.errors)) == (300, 0, 300, 7)
    assert len(validate_path(path, max_errors=0).errors) == 300


def test_streams_by_batch(tmp_path: Path, monkeypatch):
    """Rows come batch by batch: the reader never holds more than one batch of the file."""
    monkeypatch.setattr(readers, "BATCH_ROWS", 10)
    rows = ol_rows(1) * 95
    pq.write_table(pa.table({"text": rows}), tmp_path / "x.parquet", row_group_size=10)
    source = open_rows(tmp_path / "x.parquet")
    sizes = [len(b.rows) for b in source.batches(("text",))]
    assert sizes == [10] * 9 + [5]
    seen = [i for i, findings in iter_findings(source) if not findings]
    assert seen == list(range(95))


def test_file_level_problems(tmp_path: Path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("\n \n")
    pq.write_table(pa.table({"a": [1], "b": [2]}), tmp_path / "other.parquet")
    (tmp_path / "obj.json").write_text('{"instruction": "x"}')
    for name, message in [
        ("empty.jsonl", "empty file"),
        ("other.parquet", "columns a, b do not match any format: expected"),
        ("obj.json", "expected an array"),
    ]:
        with pytest.raises(DataError, match=message):
            validate_path(tmp_path / name)
    blank = validate_path(tmp_path / "blank.txt")
    assert (blank.rows, blank.error_count, blank.warning_count) == (0, 0, 1)
    with pytest.raises(UsageError, match="no such file"):
        validate_path(tmp_path / "nope.parquet")
    with pytest.raises(UsageError, match="unknown format 'csv'"):
        list(validate_paths([tmp_path / "other.parquet"], format="csv"))
    # validate_paths goes on past a file it cannot read, reporting it as one error.
    reports = list(validate_paths([tmp_path / "other.parquet", tmp_path / "blank.txt"]))
    assert [(r.format, r.error_count) for r in reports] == [(None, 1), ("openlongcot", 0)]
    assert reports[0].errors[0]["row"] is None


def test_given_format_must_fit_the_columns(tmp_path: Path):
    pq.write_table(pa.table({"text": ol_rows(1)}), tmp_path / "x.parquet")
    with pytest.raises(DataError, match="not a dpo file: missing column.s. prompt, chosen, rejected"):
        validate_path(tmp_path / "x.parquet", format="dpo")
    assert validate_path(tmp_path / "x.parquet", format="openlongcot").valid_rows == 1


def test_reader_rows_yields_dicts_and_names_an_unreadable_row(tmp_path: Path):
    p = tmp_path / "r.txt"
    p.write_bytes(ol_rows(1)[0].encode() + b"\n\n\xff\n")
    rows = (row for _, row in open_rows(p).rows())
    assert next(rows) == {"text": ol_rows(1)[0]}
    with pytest.raises(DataError, match=r"r.txt: row 2: line 3: invalid UTF-8"):
        next(rows)
