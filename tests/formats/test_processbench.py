"""The processbench format: exact rows from hand-built trees, refusals, row checks, and a
round trip of a real run through export, validate and datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from trees import all_wrong, load_with_datasets, order_of_operations, root_only, ungraded_three_way

from cotgen.errors import UsageError
from cotgen.formats import ExportRefused, make_format, provenance
from cotgen.formats.processbench import ProcessBenchFormat
from cotgen.models import public_model_id
from cotgen.tree import Tree, solution_steps

PROBLEM = "What is 2 + 3 * 4?"


def rows_of(tree: Tree) -> list[dict]:
    return list(ProcessBenchFormat().export(tree))


def test_rows_follow_the_ratings_one_per_graded_answered_path():
    tree = order_of_operations()
    assert rows_of(tree) == [
        {"id": f"{tree.id}-4", "generator": "none", "problem": PROBLEM,
         "steps": ["First, 3 * 4 = 12.", "Then 2 + 12 = 14.", "So the answer is \\boxed{14}."],
         "label": -1, "final_answer_correct": True},
        {"id": f"{tree.id}-6", "generator": "none", "problem": PROBLEM,
         "steps": ["First, 2 + 3 = 5.", "Then 5 * 4 = 20.", "So the answer is \\boxed{20}."],
         "label": 0, "final_answer_correct": False},
        # Through the critic: the refine takes the place of the step it criticized, whose
        # negative rating is no longer on the path.
        {"id": f"{tree.id}-9", "generator": "none", "problem": PROBLEM,
         "steps": ["First, 3 * 4 = 12, and 2 + 12 = 14.", "The answer is \\boxed{14}."],
         "label": -1, "final_answer_correct": True},
    ]


def test_label_is_the_first_negative_step_not_the_last():
    tree = order_of_operations()
    tree.nodes[2].rating = "unknown"  # "First, 2 + 3 = 5." no longer rated
    assert [r["label"] for r in rows_of(tree)] == [-1, 1, -1]
    tree.nodes[1].rating = "negative"  # the correct path's first step, rated negative by consensus
    assert [r["label"] for r in rows_of(tree)] == [0, 1, -1]


def test_an_unrated_wrong_answer_is_rated_by_its_verdict():
    # No ratings at all: a wrong final answer is still a wrong step, never label -1.
    assert rows_of(all_wrong())[0] | {"id": ""} == {
        "id": "", "generator": "", "problem": "What is 1 + 1?",
        "steps": ["1 + 1 = 3.", "The answer is \\boxed{3}."], "label": 1, "final_answer_correct": False,
    }


def test_ids_are_unique_and_stable():
    first, again = rows_of(order_of_operations()), rows_of(order_of_operations())
    assert [r["id"] for r in first] == [r["id"] for r in again]
    assert len({r["id"] for r in first}) == len(first)


@pytest.mark.parametrize(
    ("model", "generator"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),
        ("tiny-reasoner", "tiny-reasoner"),
        ("/home/someone/models/my-qwen", "my-qwen"),
        ("/scratch/ckpt/step-100/", "step-100"),
        ("C:\\models\\qwen", "qwen"),
    ],
)
def test_generator_is_the_model_id_never_a_local_path(model, generator):
    tree = order_of_operations()
    tree.model = model
    assert {r["generator"] for r in rows_of(tree)} == {generator}
    assert public_model_id(model) == generator


def test_refusals_name_the_reason():
    with pytest.raises(ExportRefused, match=r"no answered root-to-leaf path \(no terminal leaf\)"):
        rows_of(root_only())
    with pytest.raises(ExportRefused, match=r"no graded answered path: .*the tree has no reference answer"):
        rows_of(ungraded_three_way())
    unverdicted = all_wrong()
    unverdicted.nodes[2].correct = None
    with pytest.raises(ExportRefused, match=r"no graded answered path: .*no verdict was recorded"):
        rows_of(unverdicted)
    blank = Tree.new("What is 3 + 3?", answer="6")
    blank.add(0, "step", "  \n")
    blank.add(1, "conclusion", "\\boxed{6}", terminal=True, correct=True)
    with pytest.raises(ExportRefused, match="every graded answered path has an empty step"):
        rows_of(blank)
    with pytest.raises(ExportRefused, match="problem text is empty"):
        rows_of(Tree.new("   ", answer="1"))


def test_control_tokens_are_refused_on_export_and_flagged_by_check():
    tree = order_of_operations()
    tree.nodes[3].text = "Then 2 + 12 = 14.<|im_end|>"
    with pytest.raises(ExportRefused, match=r"steps\[1\] holds the chat-template control token '<\|im_end\|>'"):
        rows_of(tree)
    row = rows_of(order_of_operations())[0] | {"problem": "<|im_start|>user\nWhat is 2 + 3 * 4?"}
    [finding] = ProcessBenchFormat().check(row)
    assert finding.severity == "error" and "problem holds the chat-template control token" in finding.message


def test_exported_rows_pass_their_own_check():
    fmt = ProcessBenchFormat()
    named = all_wrong()
    named.model = "Qwen/Qwen2.5-0.5B-Instruct"
    for tree in (order_of_operations(), named):
        for row in fmt.export(tree):
            assert fmt.check(row) == [], row
    # A tree that does not say which model wrote it gives rows that say so.
    [row] = fmt.export(all_wrong())
    assert [(f.severity, f.message) for f in fmt.check(row)] == [
        ("warning", "generator is empty: the row does not say which model wrote its steps"),
    ]


GOOD = {"id": "t-4", "generator": "Qwen/Qwen2.5-7B-Instruct", "problem": PROBLEM,
        "steps": ["3 * 4 = 12.", "2 + 12 = 14.", "\\boxed{14}"], "label": -1, "final_answer_correct": True}


@pytest.mark.parametrize(
    ("change", "severity", "message"),
    [
        ({"id": None}, "error", "id is missing"),
        ({"id": " "}, "error", "id is empty"),
        ({"generator": None}, "error", "generator must be a string (the model id), not missing"),
        ({"generator": ""}, "warning", "generator is empty"),
        ({"generator": "/home/me/ckpt/qwen-sft"}, "error",
         "generator '/home/me/ckpt/qwen-sft' is a machine-local path: publish the model id (e.g. 'qwen-sft')"),
        ({"problem": 3}, "error", "problem must be a string, not int"),
        ({"problem": ""}, "error", "problem is empty"),
        ({"steps": "3 * 4 = 12."}, "error", "steps must be a list of strings, not str"),
        ({"steps": ["a", 2, "c"]}, "error", "steps[1] must be a string, not int"),
        ({"steps": ["a", " ", "c"]}, "error", "steps[1] is empty"),
        ({"steps": ["a", "b<|eot_id|>"]}, "error", "steps[1] holds the chat-template control token '<|eot_id|>'"),
        ({"label": "0"}, "error", "label must be an integer (a step index, or -1), not str"),
        ({"label": True}, "error", "label must be an integer (a step index, or -1), not bool"),
        ({"label": None}, "error", "label must be an integer (a step index, or -1), not missing"),
        ({"label": 3}, "error",
         "label 3 is out of range for 3 steps: the index of the first wrong step (0 to 2), or -1 when none is wrong"),
        ({"label": -2}, "error", "label -2 is out of range for 3 steps"),
        ({"final_answer_correct": 1}, "error", "final_answer_correct must be true or false, not int"),
        ({"final_answer_correct": None}, "error", "final_answer_correct must be true or false, not missing"),
        ({"final_answer_correct": False}, "warning",
         "label is -1 (no wrong step) but final_answer_correct is false: a wrong answer has a wrong step"),
    ],
)
def test_check_names_what_is_wrong(change, severity, message):
    findings = ProcessBenchFormat().check(GOOD | change)
    assert [f.severity for f in findings] == [severity], findings
    assert findings[0].message.startswith(message), findings[0].message


def test_check_a_row_with_no_steps():
    findings = ProcessBenchFormat().check(GOOD | {"steps": [], "label": 0})
    assert [f.message for f in findings] == [
        "steps is empty: a path needs at least one step",
        "label is 0 but there are no steps: only -1 fits",
    ]
    assert [f.message for f in ProcessBenchFormat().check(GOOD | {"steps": [], "label": -1})] == [
        "steps is empty: a path needs at least one step",
    ]


def test_valid_rows_pass():
    fmt = ProcessBenchFormat()
    assert fmt.check(GOOD) == []
    # A right answer reached through a wrong step is a row ProcessBench itself holds.
    assert fmt.check(GOOD | {"label": 1}) == []
    assert fmt.check(GOOD | {"label": 0, "final_answer_correct": False}) == []


def test_make_format_takes_no_options():
    assert make_format("processbench") == ProcessBenchFormat()
    with pytest.raises(UsageError, match="--paths does not apply to --format processbench"):
        make_format("processbench", paths="all")


def test_rows_load_with_datasets(tmp_path, monkeypatch):
    rows = rows_of(order_of_operations())
    assert load_with_datasets(rows, ProcessBenchFormat.arrow_schema(), tmp_path, monkeypatch) == rows


# -- a real run: tiny-reasoner from a local folder, through the CLI ------------------------


@pytest.fixture(scope="module")
def reasoner_run(tmp_path_factory) -> Path:
    """Three trees searched by tiny-reasoner (which answers some problems), loaded from a
    folder of its own so that the trees record a machine-local model path."""
    from cotgen.cli.main import run as cli_run
    from cotgen.reasoner import packaged_model_path

    base = tmp_path_factory.mktemp("processbench")
    shutil.copytree(packaged_model_path(), base / "models" / "my-reasoner")
    out = base / "run"
    code = cli_run(["synthesize", "--model", str(base / "models" / "my-reasoner"), "--problems", "builtin:arith",
                    "--problem-seed", "1000", "--limit", "3", "--out", str(out), "--quiet", "--seed", "1"])
    assert code == 0
    return out


def test_a_run_exports_validates_and_loads(reasoner_run, tmp_path, cli, monkeypatch):
    from cotgen.io.trees import iter_input_trees

    trees = {t.id: t for t in iter_input_trees([reasoner_run])}
    assert all(t.model.endswith("/my-reasoner") for t in trees.values())  # the local path, as recorded
    out = tmp_path / "pb"
    r = cli("export", reasoner_run, "--format", "processbench", "--out", out, "--json", "--quiet")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["trees_read"] == 3 and summary["rows_written"] > 0, summary

    r = cli("validate", out, "--json")
    assert r.code == 0, r.out
    [report] = [json.loads(line) for line in r.out.splitlines()]
    assert report["format"] == "processbench"  # detected from the columns
    assert report["rows"] == report["valid_rows"] == summary["rows_written"]
    assert report["error_count"] == report["warning_count"] == 0

    [shard] = sorted(out.glob("*.parquet"))
    schema = pq.read_schema(shard)
    own = ProcessBenchFormat.arrow_schema()
    assert pa.schema(list(schema)[: len(own)]).equals(own)
    # then the provenance columns (cotgen.formats.provenance), in their order and types
    assert [(f.name, f.type) for f in list(schema)[len(own):]] == [(f.name, f.type) for f in provenance.arrow_fields() if f.name not in own.names]
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    from datasets import load_dataset

    rows = load_dataset("parquet", data_files=str(shard), split="train", cache_dir=str(tmp_path / "hf-cache")).to_list()
    assert len(rows) == summary["rows_written"]
    assert {r["generator"] for r in rows} == {"my-reasoner"}
    assert all(ProcessBenchFormat().check(r) == [] for r in rows)
    # Each row agrees with its tree: the path's steps, the first negative rating, the verdict.
    for row in rows:
        tree_id, leaf_id = row["id"].rsplit("-", 1)
        tree = trees[tree_id]
        leaf = tree.by_id()[int(leaf_id)]
        steps = solution_steps(tree.path_to(leaf.id))
        assert row["steps"] == [n.text.strip() for n in steps]
        assert row["final_answer_correct"] is leaf.correct
        negative = [i for i, n in enumerate(steps) if n.rating == "negative"]
        assert row["label"] == (negative[0] if negative else -1)


def test_dedupe_reads_the_problem_and_ignores_ids(tmp_path):
    import pyarrow as pa

    from cotgen.dedupe import DedupeConfig, dedupe

    rows = rows_of(order_of_operations())
    copy = rows[0] | {"id": "another-tree-4", "generator": "another/model"}  # the same path, found twice
    src = tmp_path / "pb"
    src.mkdir()
    pq.write_table(pa.Table.from_pylist([*rows, copy], schema=ProcessBenchFormat.arrow_schema()),
                   src / "train-00000-of-00001.parquet")
    for on, kept in (("text", 3), ("problem", 1)):
        dedupe([src], tmp_path / on, DedupeConfig(on=on))
        [shard] = sorted((tmp_path / on).glob("*.parquet"))
        assert pq.read_table(shard).num_rows == kept, on
