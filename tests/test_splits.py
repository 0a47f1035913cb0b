"""Splits: a dataset without --split gives its train split; a benchmark's evaluation split
(GSM8K test, MATH-500, ...) warns on stderr, is marked in the manifest and in push's card.
Datasets are local folders (no downloads); the `gsm8k` alias is pointed at one."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scripted_engine import ScriptedEngine

from cotgen.benchmarks import benchmark_split
from cotgen.engines.config import EngineConfig
from cotgen.errors import UsageError
from cotgen.io.layout import read_manifest
from cotgen.problems import load_problems
from cotgen.search import SearchConfig
from cotgen.synthesize import RunConfig, run


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    import datasets

    cache = tmp_path / "datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def dataset_folder(folder: Path, **splits: list[str]) -> Path:
    """A local dataset in the Hub's layout: data/<split>-00000-of-00001.parquet per split."""
    (folder / "data").mkdir(parents=True)
    for split, questions in splits.items():
        pq.write_table(pa.table({"question": questions, "answer": [f"#### {i}" for i in range(len(questions))]}),
                       folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


@pytest.fixture
def gsm8k(tmp_path, datasets_cache):
    return dataset_folder(tmp_path / "gsm8k", train=["train q1?", "train q2?"], test=["test q1?"])


def test_a_dataset_without_split_gives_its_train_split(gsm8k):
    ps = load_problems(str(gsm8k))
    assert [p.question for p in ps] == ["train q1?", "train q2?"]
    assert ps.split == "train" and ps.source == "gsm8k/train" and ps.benchmark is None
    assert ps.benchmark_warning() is None


def test_the_gsm8k_alias_without_split_searches_train(gsm8k, monkeypatch):
    import datasets

    real = datasets.load_dataset
    asked = []

    def local(name, config=None, **kw):  # the Hub's openai/gsm8k, served from the local folder
        asked.append((name, config, kw.get("split")))
        return real(str(gsm8k), **kw)

    monkeypatch.setattr(datasets, "load_dataset", local)
    ps = load_problems("gsm8k")
    assert asked == [("openai/gsm8k", "main", None)]
    assert [p.question for p in ps] == ["train q1?", "train q2?"] and ps.source == "openai/gsm8k/train"
    assert ps.benchmark is None
    test = load_problems("gsm8k", split="test")  # still allowed
    assert [p.question for p in test] == ["test q1?"] and test.benchmark == "GSM8K test"
    assert "openai/gsm8k/test is the GSM8K test benchmark" in test.benchmark_warning()


def test_a_dataset_with_only_a_test_split_gives_it_and_a_benchmark_warns(tmp_path, datasets_cache):
    ps = load_problems(str(dataset_folder(tmp_path / "MATH-500", test=["m1?", "m2?"])))
    assert ps.split == "test" and ps.benchmark == "MATH-500"
    plain = load_problems(str(dataset_folder(tmp_path / "mine", test=["a?"])))
    assert plain.split == "test" and plain.benchmark is None


def test_no_train_split_and_several_others_asks_for_one(tmp_path, datasets_cache):
    folder = dataset_folder(tmp_path / "two", validation=["v?"], test=["t?"])
    with pytest.raises(UsageError, match=r"no train split \(its splits: .*\): choose one with --split"):
        load_problems(str(folder))


@pytest.mark.parametrize(("dataset", "split", "expected"), [
    ("openai/gsm8k", "test", "GSM8K test"), ("openai/gsm8k", "train", None),
    ("HuggingFaceH4/MATH-500", "test", "MATH-500"), ("EleutherAI/hendrycks_math", "test", "MATH test"),
    ("EleutherAI/hendrycks_math", "train", None), ("HuggingFaceH4/aime_2024", "train", "AIME"),
    ("AI-MO/aimo-validation-amc", "train", "AMC"), ("Hothan/OlympiadBench", "train", "OlympiadBench"),
    ("Idavidrein/gpqa", "train", "GPQA"), ("livecodebench/code_generation_lite", "test", "LiveCodeBench"),
    ("cais/mmlu", "test", "MMLU test"), ("cais/mmlu", "auxiliary_train", None),
    ("openai/openai_humaneval", "test", "HumanEval"), ("someone/math-dataset", "test", None),
])
def test_known_benchmarks(dataset, split, expected):
    assert benchmark_split(dataset, split) == expected


def test_a_benchmark_run_warns_and_its_manifest_and_card_say_so(gsm8k, tmp_path):
    from cotgen.hub import PushConfig, render_card

    warned = []
    opts = RunConfig(problems=str(gsm8k), split="test", out=tmp_path / "run", concurrency=2)
    run(opts, SearchConfig(simulations=2), EngineConfig(), engine=ScriptedEngine(), warn=warned.append)
    assert any("gsm8k/test is the GSM8K test benchmark" in w for w in warned)
    manifest = read_manifest(tmp_path / "run")
    assert manifest["problems_split"] == "test" and manifest["benchmark_problems"] == "GSM8K test"
    card = render_card("", PushConfig(repo="me/data"), "trees", "trees", [], manifest)
    assert "Warning: the problems are the GSM8K test benchmark" in card

    warned.clear()
    run(RunConfig(problems=str(gsm8k), out=tmp_path / "train", concurrency=2), SearchConfig(simulations=2),
        EngineConfig(), engine=ScriptedEngine(), warn=warned.append)
    assert not any("benchmark" in w for w in warned)
    manifest = read_manifest(tmp_path / "train")
    assert manifest["problems_split"] == "train" and manifest["benchmark_problems"] is None
    card = render_card("", PushConfig(repo="me/data"), "trees", "trees", [], manifest)
    assert "Warning" not in card and "problems: split `train` of" in card


def test_the_warning_is_on_stderr(gsm8k, tmp_path, cli):
    # --limit 0: the problems load (and warn) but nothing is searched, so no model is needed.
    r = cli("synthesize", "--problems", gsm8k, "--split", "test", "--limit", "0", "--out", tmp_path / "r",
            "--model", tmp_path / "no-model")
    assert r.code == 0, r.err
    assert "warning:" in r.err and "GSM8K test benchmark" in r.err and r.out == ""
    r = cli("synthesize", "--problems", gsm8k, "--limit", "0", "--out", tmp_path / "r2", "--model", tmp_path / "no-model")
    assert r.code == 0 and "benchmark" not in r.err
