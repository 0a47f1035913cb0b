"""`cotgen model train-prm`: a PRM fine-tuned from cotgen's own step labels (small: a few
trees of tiny-reasoner, one epoch), and what it reads from each kind of input."""

from __future__ import annotations

import json

import pytest

from cotgen.prm_train import IGNORE, StepRows, _processbench_path, encode_paths, read_step_rows
from cotgen.reward_model import PRM_SETTINGS_FILE, PRMLayout


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """Four tiny-reasoner trees of training-seed problems, and their prm, processbench and
    sft exports."""
    from cotgen.cli.main import run

    root = tmp_path_factory.mktemp("prm-data")
    assert run(["synthesize", "--problems", "builtin:arith", "--problem-seed", "0", "--limit", "4",
                "--model", "tiny-reasoner", "--out", str(root / "run"), "--simulations", "6",
                "--enough-correct", "0", "--quiet"]) == 0
    for fmt in ("prm", "processbench", "sft"):
        assert run(["export", str(root / "run"), "--format", fmt, "--out", str(root / fmt)]) == 0
    return root


def test_labels_sit_at_each_steps_separator_only():
    from transformers import AutoTokenizer

    from cotgen.reasoner import packaged_model_path

    tok = AutoTokenizer.from_pretrained(packaged_model_path())
    rows = StepRows(paths=[("What is 2+3?", ["2+3 = 5", "so 6", "The answer is 6"], [True, False, None])])
    [ex] = encode_paths(tok, PRMLayout(separator="\n\n"), rows, 1024)
    _, positions = PRMLayout(separator="\n\n").encode(tok, "What is 2+3?", rows.paths[0][1])
    labelled = {i: t for i, t in enumerate(ex["labels"]) if t != IGNORE}
    assert labelled == {positions[0]: 1, positions[1]: 0}  # the unlabelled third step: nothing
    assert len(ex["labels"]) == len(ex["input_ids"])


def test_too_long_paths_are_dropped_and_counted():
    from transformers import AutoTokenizer

    from cotgen.reasoner import packaged_model_path

    tok = AutoTokenizer.from_pretrained(packaged_model_path())
    rows = StepRows(paths=[("q", ["a long step " * 50], [True]), ("q", ["short"], [False])])
    assert len(encode_paths(tok, PRMLayout(), rows, 32)) == 1
    assert rows.dropped == {"longer than 32 tokens": 1}


def test_processbench_rows_label_up_to_the_first_wrong_step():
    row = {"problem": "p", "steps": ["a", "b", "c", "d"], "label": 1}
    assert _processbench_path(row)[2] == [True, False, None, None]
    assert _processbench_path({**row, "label": -1})[2] == [True, True, True, True]


def test_reads_prm_processbench_and_run_folders_alike(searched):
    from_prm = read_step_rows([searched / "prm"])
    from_run = read_step_rows([searched / "run"])
    from_pb = read_step_rows([searched / "processbench"])
    assert from_prm.paths and from_prm.paths == from_run.paths  # a run folder is read as its prm export
    assert from_run.formats == {"trees": 4}
    assert from_pb.paths and all(len(steps) == len(labels) for _, steps, labels in from_pb.paths)


def test_an_export_without_step_labels_is_refused(cli, searched, tmp_path):
    r = cli("model", "train-prm", searched / "sft", "--base", "tiny-reasoner", "--out", tmp_path / "prm")
    assert r.code == 2
    assert "sft rows, which carry no step labels" in r.err


def test_invalid_rows_are_counted_and_no_row_left_is_an_error(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "completions": ["a", "b"], "labels": [True]}) + "\n")
    r = cli("model", "train-prm", bad, "--base", "tiny-reasoner", "--out", tmp_path / "prm")
    assert r.code == 1
    assert "no labelled path" in r.err and "invalid prm row: 1" in r.err


def test_train_prm_writes_a_folder_value_model_loads(cli, searched, tmp_path):
    """The loop: trees -> prm export -> train-prm -> a PRM the search's valuer loads."""
    import asyncio

    from cotgen.reward_model import HFRewardModel

    out = tmp_path / "prm"
    r = cli("model", "train-prm", searched / "prm", "--base", "tiny-reasoner", "--out", out, "--epochs", "1",
            "--batch-size", "8", "--json")
    assert r.code == 0, r.err
    record = json.loads(r.out)
    assert record["paths"] > 0 and record["labelled_steps"] >= record["paths"]
    saved = json.loads((out / PRM_SETTINGS_FILE).read_text())
    assert saved["separator"] == "\n\n" and saved["layout"] == "token-classification" and saved["complete"] is True
    assert json.loads((out / "config.json").read_text())["architectures"] == ["Qwen2ForTokenClassification"]
    prm = HFRewardModel(str(out), device="cpu")
    assert prm.layout == PRMLayout("token-classification", "\n\n")
    [scores] = asyncio.run(prm.score("Start with 13.", [["13 * 3 = 39", "The answer is \\boxed{39}."]]))
    assert len(scores) == 2 and all(0 < s < 1 for s in scores)
