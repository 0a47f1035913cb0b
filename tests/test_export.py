"""Export: trees, OpenLongCoT and Marco-o1 files -> Hub-style shards, sizes, skips counted by reason."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cotgen.errors import UsageError
from cotgen.export import export, parse_size
from cotgen.formats import FORMATS, ExportRefused, make_format
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree
from cotgen.validate import validate_path


def make_tree(i: int, *, bad_text: bool = False, failed: bool = False) -> Tree:
    """A small sound tree: a step with a critic and a refine, a correct conclusion, a wrong one."""
    t = Tree.new(f"What is {i} + {i}?", str(2 * i), source="test")
    s = t.add(0, "step", f" We add {i} and {i}.", rating="positive", value=0.8, visits=4)
    c = t.add(s.id, "critic", "The addition is set up right.")
    r = t.add(c.id, "refine", f"Adding {i} to itself gives {2 * i}.", rating="positive", value=0.9, visits=2)
    t.add(r.id, "conclusion", f"The answer is \\boxed{{{2 * i}}}.", terminal=True, correct=True, rating="positive", value=1.0, visits=1)
    w = t.add(0, "step", f"Multiply {i} by 3.", rating="negative", value=0.1, visits=1)
    t.add(w.id, "conclusion", f"So \\boxed{{{3 * i + 1}}}.", terminal=True, correct=False, rating="negative", value=0.0, visits=1)
    if bad_text:
        t.add(0, "step", "a model wrote <end_of_thought> here")
    if failed:
        t.error = "engine crashed"
    return t


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    trees = [make_tree(i, bad_text=(i % 10 == 3), failed=(i == 5)) for i in range(40)]
    w = TreeShardWriter(tmp_path / "run")
    w.write(trees[:20])
    w.write(trees[20:])
    return tmp_path / "run"


def test_parse_size():
    assert parse_size("500MB") == 500_000_000
    assert parse_size("1GB") == 10**9
    assert parse_size("20KB") == 20_000
    assert parse_size("2MiB") == 2 * 2**20
    assert parse_size("123456") == 123456
    assert parse_size("1.5 kb") == 1500
    for bad in ("lots", "5 parsecs", "-1MB", "100"):
        with pytest.raises(UsageError, match="max-shard-size"):
            parse_size(bad)


def test_export_openlongcot_counts_skips_by_reason(run_dir: Path, tmp_path: Path):
    out = tmp_path / "ol"
    s = export([run_dir], make_format("openlongcot"), out)
    assert s.trees_read == 40
    assert s.shards == ["train-00000-of-00001.parquet"]
    # 4 trees hold a structural tag in a step (i = 3, 13, 23, 33), 1 failed (i = 5).
    assert s.skipped == {
        "refused by openlongcot: node N (step): its text contains the structural tag <end_of_thought> at char N, which would break the row": 4,
        "failed tree: engine crashed": 1,
    }
    assert s.rows_written == s.trees_exported == 35
    assert "row 3" in s.examples[next(iter(s.skipped))]
    table = pq.read_table(out / s.shards[0])
    assert table.column_names == ["text", "id", "problem", "answer"]
    assert table.num_rows == 35
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    report = validate_path(out / s.shards[0])
    assert (report.format, report.rows, report.valid_rows, report.error_count) == ("openlongcot", 35, 35, 0)


def test_openlongcot_file_converts_back_to_trees(run_dir: Path, tmp_path: Path):
    first = export([run_dir], make_format("openlongcot"), tmp_path / "a")
    shard = tmp_path / "a" / first.shards[0]
    # Parquet -> Parquet keeps ids, answers and text; the separator option is applied.
    again = export([shard], make_format("openlongcot", separator=" "), tmp_path / "b")
    a = pq.read_table(shard).to_pylist()
    b = pq.read_table(tmp_path / "b" / again.shards[0]).to_pylist()
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert [r["answer"] for r in a] == [r["answer"] for r in b]
    assert [r["text"].replace("\n<start_of_father_id>", " <start_of_father_id>") for r in a] == [r["text"] for r in b]
    # .txt (one row per line) -> Parquet: rows written with a space separator fit on a line.
    txt = tmp_path / "rows.txt"
    txt.write_text("\n".join(r["text"] for r in b) + "\n", encoding="utf-8")
    third = export([txt], make_format("openlongcot", separator=" "), tmp_path / "c")
    c = pq.read_table(tmp_path / "c" / third.shards[0]).to_pylist()
    assert [r["text"] for r in c] == [r["text"] for r in b]
    assert all(r["answer"] is None for r in c)  # a .txt row has no ground truth


def test_unparsable_openlongcot_rows_are_skipped_and_counted(tmp_path: Path):
    good = make_format("openlongcot", separator=" ")
    rows = [next(good.export(make_tree(i)))["text"] for i in range(3)]
    txt = tmp_path / "rows.txt"
    txt.write_bytes(("\n".join([rows[0], "not a row", rows[1]]) + "\n").encode() + b"\xff\xfe broken\n" + rows[2].encode() + b"\n")
    s = export([txt], good, tmp_path / "out")
    assert (s.trees_read, s.rows_written) == (5, 3)
    assert sum(s.skipped.values()) == 2
    reasons = " | ".join(s.examples.values())
    assert f"{txt}: row 1, char 0" in reasons
    assert "line 4: invalid UTF-8" in reasons


@pytest.mark.parametrize("journey", [False, True], ids=["plain", "journey"])
def test_marco_file_converts_back_to_trees_byte_for_byte(run_dir: Path, tmp_path: Path, journey: bool):
    fmt = make_format("marco", journey=journey)
    first = export([run_dir], fmt, tmp_path / "a")
    shard = tmp_path / "a" / first.shards[0]
    again = export([shard], fmt, tmp_path / "b")
    assert (again.trees_read, again.rows_written, again.skipped) == (first.rows_written, first.rows_written, {})
    assert (tmp_path / "b" / again.shards[0]).read_bytes() == shard.read_bytes()
    # and on to the other formats: every record is a correct path
    sft = export([shard], make_format("sft"), tmp_path / "sft")
    assert sft.rows_written == first.rows_written and validate_path(tmp_path / "sft" / sft.shards[0]).error_count == 0


def test_bad_marco_rows_are_skipped_and_counted(tmp_path: Path):
    from cotgen.formats.marco import dumps_marco, to_marco

    good = [to_marco(make_tree(i)) for i in range(2)]
    bad = [{"instruction": "q"}, "a string", {"instruction": "q", "response": "no tags"}]
    path = tmp_path / "m.json"
    path.write_text(dumps_marco([good[0], *bad, good[1]]), encoding="utf-8")
    s = export([path], make_format("marco"), tmp_path / "out")
    assert (s.trees_read, s.rows_written, sum(s.skipped.values())) == (5, 2, 3)
    assert set(s.skipped) == {
        "not a valid Marco-o1 record: missing 'response'",
        "not a valid Marco-o1 record: not an object: a JSON string, expected {instruction, response}",
        "not a valid Marco-o1 record: no <Thought>: expected <Thought>\\n...\\n</Thought>\\n<Output>\\n...\\n</Output>",
    }
    assert f"{path}: row 1: not a valid Marco-o1 record: missing 'response'" in s.examples.values()
    assert (tmp_path / "out" / s.shards[0]).read_text(encoding="utf-8") == dumps_marco(good)


def test_max_shard_size_rolls_shards_in_order(run_dir: Path, tmp_path: Path):
    trees = [make_tree(i) for i in range(300)]
    TreeShardWriter(tmp_path / "big").write(trees)
    out = tmp_path / "shards"
    s = export([tmp_path / "big"], make_format("openlongcot"), out, max_shard_size="20KB")
    n = len(s.shards)
    assert n > 2
    assert s.shards == [f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    sizes = [(out / name).stat().st_size for name in s.shards]
    assert max(sizes) <= 20_000, sizes
    ids = [i for name in s.shards for i in pq.read_table(out / name, columns=["id"]).column("id").to_pylist()]
    assert ids == [t.id for t in trees]


def test_refuses_existing_shards_unless_overwrite(run_dir: Path, tmp_path: Path):
    out = tmp_path / "ol"
    export([run_dir], make_format("openlongcot"), out, max_shard_size="20KB")
    before = sorted(p.name for p in out.iterdir())
    assert len(before) > 1
    (out / "test-00000-of-00001.parquet").write_bytes(b"another split, left alone")
    with pytest.raises(UsageError, match="already holds train shards.*--overwrite"):
        export([run_dir], make_format("openlongcot"), out)
    s = export([run_dir], make_format("openlongcot"), out, overwrite=True)
    sidecars = ["_train.provenance.json", "_train.provenance.jsonl"]  # openlongcot's provenance: never in the row
    assert sorted(p.name for p in out.iterdir()) == sorted([*s.shards, *sidecars, "test-00000-of-00001.parquet"])
    assert s.shards == ["train-00000-of-00001.parquet"]
    # Another split goes beside it without --overwrite.
    s2 = export([run_dir], make_format("openlongcot"), out, split="validation")
    assert s2.shards == ["validation-00000-of-00001.parquet"]


def test_out_that_is_a_file_is_a_usage_error(run_dir: Path, tmp_path: Path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        export([run_dir], make_format("openlongcot"), f)


class _Exploding:
    """A format that fails halfway: the export must leave no shard behind."""

    name = "boom"
    file_kind = "parquet"
    columns = ("text",)

    def __init__(self) -> None:
        self.seen = 0

    def export(self, tree):
        self.seen += 1
        if self.seen > 30:
            raise RuntimeError("bug in a format")
        yield {"text": tree.problem * 200}

    def check(self, row):
        return []


def test_a_crash_leaves_no_shard(run_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        export([run_dir], _Exploding(), out, max_shard_size="5KB")
    assert list(out.iterdir()) == []


class _Refusing(_Exploding):
    def export(self, tree):
        if tree.problem.endswith("0 + 0?"):
            yield {"text": "only one"}
        else:
            raise ExportRefused("no correct path")


def test_refusals_are_counted(run_dir: Path, tmp_path: Path):
    s = export([run_dir], _Refusing(), tmp_path / "out")
    assert s.rows_written == 1
    # The failed tree is skipped before the format sees it.
    assert s.skipped == {"refused by boom: no correct path": 38, "failed tree: engine crashed": 1}


def test_export_rejects_rows_without_trees(tmp_path: Path):
    # dpo rows hold two answers, not a tree; Marco-o1 records do (test above)
    f = tmp_path / "dpo.jsonl"
    f.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    if "dpo" not in FORMATS:
        pytest.skip("no dpo format registered")
    with pytest.raises(UsageError, match="do not carry whole trees"):
        export([f], make_format("openlongcot"), tmp_path / "out")


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_exports_and_validates(name: str, run_dir: Path, tmp_path: Path):
    fmt = make_format(name)
    s = export([run_dir], fmt, tmp_path / name)
    assert s.rows_written > 0, s.skipped
    assert s.trees_read == 40
    for shard in s.shards:
        assert shard.endswith(f".{fmt.file_kind}")
        report = validate_path(tmp_path / name / shard)
        assert report.format == name
        assert report.rows > 0
        assert report.error_count == 0, report.errors[:3]


def test_marco_shards_are_what_dumps_marco_writes(run_dir: Path, tmp_path: Path):
    from cotgen.formats.marco import dumps_marco, loads_marco

    trees = [make_tree(i) for i in range(60)]
    TreeShardWriter(tmp_path / "many").write(trees)
    out = tmp_path / "marco"
    s = export([tmp_path / "many"], make_format("marco"), out, max_shard_size="4KB")
    n = len(s.shards)
    assert n > 1
    assert s.shards == [f"train-{i:05d}-of-{n:05d}.json" for i in range(n)]
    records = []
    for name in s.shards:
        data = (out / name).read_bytes()
        assert len(data) <= 4000
        part = loads_marco(data.decode("utf-8"))
        assert data.decode("utf-8") == dumps_marco(part)
        records.extend(part)
    assert [r["instruction"] for r in records] == [t.problem for t in trees]


def test_column_wise_tree_reader_matches_from_row(tmp_path: Path):
    from cotgen.io.readers import TreeShardReader
    from cotgen.tree import Tree

    trees = [make_tree(i, failed=(i == 2)) for i in range(7)]
    trees[3].answer = None
    trees[4].config = {"c_puct": 1.5, "nested": {"a": [1, 2]}}
    trees[5].stats.simulations = 17
    trees[6].nodes[2].q_estimate = 0.25
    trees[6].nodes[2].logprob = -1.5
    w = TreeShardWriter(tmp_path / "run")
    path = w.write(trees)
    fast = [t for _, t in TreeShardReader(path).trees()]
    assert [t.to_row() for t in fast] == [Tree.from_row(r).to_row() for _, r in TreeShardReader(path).rows()]
    assert fast[2].error == "engine crashed" and fast[4].config["nested"] == {"a": [1, 2]}
