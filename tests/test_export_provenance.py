"""Provenance in exports (issue 20 item 4): source, generator, verified_by, truncated, tokens.

Formats that allow extra columns carry them in every row; the byte-exact formats (OpenLongCoT
text, Marco-o1 JSON) keep their rows as they were and get a per-row sidecar; every export
writes a summary sidecar. The rows still validate, and datasets.load_dataset reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cotgen.export import export
from cotgen.formats import make_format, provenance
from cotgen.formats.marco import dumps_marco, to_marco
from cotgen.formats.openlongcot import to_openlongcot
from cotgen.io.layout import read_manifest
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree
from cotgen.validate import validate_path
from cotgen.verify import grader_id

LOCAL_MODEL = "/home/someone/models/my-reasoner"  # as a run records a model loaded from a folder


def make_tree(i: int) -> Tree:
    """A correct path (tokens 5 + 7 + 3), a wrong one, and a step cut by the token limit."""
    t = Tree.new(f"What is {i} + {i}?", str(2 * i), source=f"openai/gsm8k/train#{i}", model=LOCAL_MODEL)
    s = t.add(0, "step", f"We add {i} and {i}.", rating="positive", value=0.8, visits=4, tokens=5)
    t.add(s.id, "conclusion", f"The answer is \\boxed{{{2 * i}}}.", terminal=True, correct=True,
          rating="positive", value=1.0, visits=1, tokens=7)
    # Before the wrong step, so that dpo's worst of the tied siblings is this one.
    t.add(0, "step", "Let us write out every number from one to a mill", value=0.0, tokens=64, truncated=True)
    w = t.add(0, "step", f"Multiply {i} by 3.", rating="negative", value=0.1, visits=1, tokens=3)
    t.add(w.id, "conclusion", f"So \\boxed{{{3 * i + 1}}}.", terminal=True, correct=False,
          rating="negative", value=0.0, visits=1, tokens=4)
    return t


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    TreeShardWriter(tmp_path / "run").write([make_tree(i) for i in range(6)])
    return tmp_path / "run"


def test_the_run_manifest_records_its_grader(run_dir):
    assert read_manifest(run_dir)["verified_by"] == grader_id()
    assert grader_id().startswith("math-verify==")


@pytest.mark.parametrize("fmt", ["sft", "prm", "dpo", "processbench"])
def test_column_formats_carry_provenance_validate_and_load(run_dir, tmp_path, monkeypatch, fmt):
    out = tmp_path / fmt
    summary = export([run_dir], make_format(fmt), out)
    [shard] = [out / name for name in summary.shards]
    table = pq.read_table(shard)
    own = list(make_format(fmt).columns)
    assert table.column_names[: len(own)] == own  # the format's columns first, as before
    assert set(provenance.COLUMNS) <= set(table.column_names)
    rows = table.to_pylist()
    assert {r["source"] for r in rows} == {f"openai/gsm8k/train#{i}" for i in range(6)}
    assert {r["generator"] for r in rows} == {"my-reasoner"}  # never the local path
    assert {r["verified_by"] for r in rows} == {grader_id()}
    if fmt == "sft":
        assert [(r["tokens"], r["truncated"]) for r in rows] == [(12, False)] * 6  # the correct path
    elif fmt in ("prm", "processbench"):
        assert sorted({(r["tokens"], r["truncated"]) for r in rows}) == [(7, False), (12, False)]
    else:  # dpo: one pair per sibling group; the truncated step loses to the good one
        assert (69, True) in {(r["tokens"], r["truncated"]) for r in rows}

    report = validate_path(shard)
    assert report.format == fmt and report.ok and report.valid_rows == len(rows), report.as_json()

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    from datasets import load_dataset

    loaded = load_dataset("parquet", data_files=str(shard), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert loaded.to_list() == rows

    side = json.loads((out / "_train.provenance.json").read_text())
    assert side["rows"] == len(rows) and side["generators"] == {"my-reasoner": len(rows)}
    assert side["sources"] == {"openai/gsm8k/train": len(rows)}
    assert side["verified_by"] == {grader_id(): len(rows)}
    assert not (out / "_train.provenance.jsonl").exists()


def test_openlongcot_rows_stay_byte_exact_with_a_sidecar(run_dir, tmp_path):
    out = tmp_path / "ol"
    summary = export([run_dir], make_format("openlongcot"), out)
    table = pq.read_table(out / summary.shards[0])
    assert table.column_names == ["text", "id", "problem", "answer"]  # no provenance in the row
    trees = [make_tree(i) for i in range(6)]
    assert table.column("text").to_pylist() == [to_openlongcot(t) for t in trees]
    lines = [json.loads(x) for x in (out / "_train.provenance.jsonl").read_text().splitlines()]
    assert [x["row"] for x in lines] == list(range(6))
    assert [x["id"] for x in lines] == [t.id for t in trees]
    # The whole tree is the row: every node's tokens, and the cut step.
    assert {(x["tokens"], x["truncated"], x["generator"]) for x in lines} == {(83, True, "my-reasoner")}
    assert validate_path(out / summary.shards[0]).ok


def test_marco_file_stays_byte_exact_with_a_sidecar(run_dir, tmp_path):
    out = tmp_path / "marco"
    summary = export([run_dir], make_format("marco"), out)
    trees = [make_tree(i) for i in range(6)]
    assert (out / summary.shards[0]).read_text(encoding="utf-8") == dumps_marco([to_marco(t) for t in trees])
    lines = [json.loads(x) for x in (out / "_train.provenance.jsonl").read_text().splitlines()]
    assert [(x["row"], x["source"], x["tokens"], x["truncated"]) for x in lines] == [
        (i, f"openai/gsm8k/train#{i}", 12, False) for i in range(6)
    ]
    assert json.loads((out / "_train.provenance.json").read_text())["per_row"].startswith("_train.provenance.jsonl")


def test_a_tree_without_verdicts_was_verified_by_nothing(tmp_path):
    t = Tree.new("What is 1 + 1?", None, source="mine.jsonl#1", model="tiny")
    s = t.add(0, "step", "One and one.", tokens=4)
    t.add(s.id, "conclusion", "The answer is \\boxed{2}.", terminal=True, tokens=6)
    TreeShardWriter(tmp_path / "run").write([t])
    out = tmp_path / "prm"
    summary = export([tmp_path / "run"], make_format("prm", labels="share"), out)
    [row] = pq.read_table(out / summary.shards[0]).to_pylist()
    assert (row["verified_by"], row["source"], row["generator"], row["tokens"]) == ("", "mine.jsonl#1", "tiny", 10)


def test_validate_checks_the_provenance_columns(run_dir, tmp_path):
    """A row that publishes a local path as its generator, or a negative token count, is an
    error, as processbench's own generator column is."""
    out = tmp_path / "sft"
    summary = export([run_dir], make_format("sft"), out)
    table = pq.read_table(out / summary.shards[0])
    rows = table.to_pylist()
    rows[1]["generator"] = LOCAL_MODEL
    rows[2]["tokens"] = -3
    bad = tmp_path / "bad" / "train-00000-of-00001.parquet"
    bad.parent.mkdir()
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), bad)
    report = validate_path(bad).as_json()
    assert report["format"] == "sft" and report["error_count"] == 2, report
    messages = {e["row"]: e["message"] for e in report["errors"]}
    assert "machine-local path" in messages[1] and "'my-reasoner'" in messages[1]
    assert "tokens must be a count" in messages[2]


def test_verdicts_read_back_without_a_gold_answer_were_verified_by_nothing(tmp_path):
    # A Marco-o1 file's conclusion reads back as correct, but nothing graded it.
    golden = Path(__file__).parent / "formats" / "golden" / "marco_branching.json"
    out = tmp_path / "sft"
    export([golden], make_format("sft"), out)
    rows = pq.read_table(next(out.glob("train-*.parquet"))).to_pylist()
    assert rows and {r["verified_by"] for r in rows} == {""}
