"""decontaminate: benchmark questions (real MATH-500 and GSM8K test, from ../shared/data) planted
among fresh problems, copied with changed whitespace, case and punctuation, are all removed;
every fresh problem is kept; formats and layouts survive; synthesize --decontaminate drops
them before any engine call."""

from __future__ import annotations

import json
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scripted_engine import ScriptedEngine
from small_trees import make_tree

from cotgen.decontaminate import BenchmarkIndex, decontaminate
from cotgen.engines.config import EngineConfig
from cotgen.io.layout import read_manifest, shard_paths
from cotgen.io.trees import iter_input_trees
from cotgen.io.writers import TreeShardWriter
from cotgen.problems import load_problems
from cotgen.search import SearchConfig
from cotgen.synthesize import RunConfig, run
from cotgen.tree import Tree

# Fresh problems written in a benchmark's style (its boilerplate included), none copied from one.
HANDWRITTEN = [
    "A jar holds 14 red marbles and 9 blue marbles. Tom takes out 5 red marbles and adds 3 green ones. "
    "How many marbles are in the jar now?",
    "What is the probability that two fair coins tossed together both land tails up? Express your answer "
    "as a common fraction.",
    "Find the sum of all positive divisors of 84 that are also odd numbers.",
    "The perimeter of a rectangle is 46 cm and its length is 3 cm longer than its width. What is its area in square centimeters?",
    "Compute $\\dbinom{11}{3}$.",
]


def benchmark_questions(shared) -> list[str]:
    out = []
    for name, column in (("math500_test.jsonl", "problem"), ("gsm8k_test.jsonl", "question")):
        with open(shared / "data" / name, encoding="utf-8") as f:
            out += [json.loads(line)[column] for line in f if line.strip()]
    return out


def changed(question: str, how: int, rng: random.Random) -> str:
    """A copy with its whitespace, case or punctuation changed (how % 4 == 3: all three)."""
    text = question
    if how % 4 in (0, 3):  # whitespace: runs of spaces, newlines, tabs; spaces before punctuation
        text = re.sub(r" ", lambda _: rng.choice(["  ", "\n", "\t "]), text)
        text = re.sub(r"([.,?])(\s)", r" \1\2", text)
    if how % 4 in (1, 3):  # case
        text = text.upper() if rng.random() < 0.5 else text.swapcase()
    if how % 4 in (2, 3):  # punctuation: sentence marks dropped or swapped, curly apostrophes
        text = re.sub(r"[,;:](?=\s)", "", text)
        text = re.sub(r"\.(?=\s|$)", lambda _: rng.choice(["!", "", " ."]), text)
        text = text.replace("'", "\u2019").replace("?", " ?!")
    assert text != question or how % 4 == 2  # a question without punctuation to change stays
    return text


@pytest.fixture(scope="module")
def mix(shared):
    """(planted copies, fresh problems): every MATH-500 and GSM8K test question, changed."""
    rng = random.Random(7)
    planted = [changed(q, i, rng) for i, q in enumerate(benchmark_questions(shared))]
    fresh = [p.question for p in load_problems("builtin:arith", limit=1500, seed=11)]
    fresh += [p.question for p in load_problems("builtin:letters", limit=200, seed=11)] + HANDWRITTEN
    return planted, fresh


def prm_export(path, problems):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "prompt": problems,
        "completions": [["We add.", "The answer is \\boxed{1}."] for _ in problems],
        "labels": [[True, True] for _ in problems],
    }), path)
    return path


def test_every_planted_benchmark_question_goes_and_every_fresh_one_stays(mix, tmp_path):
    planted, fresh = mix
    problems = [q for pair in zip(planted, fresh, strict=False) for q in pair] + planted[len(fresh):] + fresh[len(planted):]
    prm_export(tmp_path / "in" / "train-00000-of-00001.parquet", problems)
    report = decontaminate([tmp_path / "in"], tmp_path / "out", ["math500", "gsm8k"])
    kept = pq.read_table(tmp_path / "out" / "train-00000-of-00001.parquet").column("prompt").to_pylist()
    assert sorted(kept) == sorted(fresh)
    assert report.rows == len(problems) and report.kept == len(fresh)
    assert report.removed_by_benchmark == {"math500": 500, "gsm8k": 1319}
    saved = json.loads((tmp_path / "out" / "decontaminate.json").read_text(encoding="utf-8"))
    assert len(saved["removed"]) == len(planted)
    first = saved["removed"][0]
    assert first["problem"] == planted[0][:500] or first["problem"].startswith(planted[0][:500])
    assert first["benchmark"] == "math500" and first["benchmark_item"] == "math500#1"
    assert first["shared_ngrams"] and all(len(g.split()) == 8 for g in first["shared_ngrams"])


def test_each_kind_of_change_alone_is_caught(shared):
    index = BenchmarkIndex.load(["gsm8k"])
    question = benchmark_questions(shared)[500]  # GSM8K test's first question
    assert question.startswith("Janet")
    for copy in (question.replace(" ", "   "), question.replace(" ", "\n"), question.upper(), question.lower(),
                 question.replace("\u2019", "'").replace(".", "!").replace(",", ""),
                 "Solve this: " + question.replace("$", " dollars ") + " Show your work."):
        found = index.match(copy)
        assert found is not None and found.item.where == "gsm8k#1", copy
    assert index.match("Janet has 16 ducks and eats three eggs.") is None  # shares no 8 words in a row


def test_a_run_folder_gives_a_run_folder_with_the_kept_trees(shared, tmp_path):
    math500 = benchmark_questions(shared)[:3]
    writer = TreeShardWriter(tmp_path / "run", settings={"model": "m"})
    writer.write([make_tree(1), Tree.new(math500[0].upper(), "1")])
    writer.write([Tree.new(math500[2], "2"), make_tree(2)])
    writer.update_manifest(status="complete", problems_source="x.jsonl")
    report = decontaminate([tmp_path / "run"], tmp_path / "out", ["math500"])
    trees = list(iter_input_trees([tmp_path / "out"]))
    assert [t.problem for t in trees] == [make_tree(1).problem, make_tree(2).problem]
    assert [p.name for p in shard_paths(tmp_path / "out")] == ["part-00000.parquet", "part-00001.parquet"]
    manifest = read_manifest(tmp_path / "out")
    assert manifest["settings"] == {"model": "m"} and manifest["counts"] == {"trees": 2, "failed": 0}
    assert manifest["decontamination"]["removed"] == 2 and manifest["decontamination"]["against"] == ["math500"]
    assert [r["id"] for r in report.removed] == [Tree.new(math500[0].upper(), "1").id, Tree.new(math500[2], "2").id]


def test_a_marco_export_stays_a_marco_file(shared, tmp_path, cli):
    from cotgen.formats.marco import dumps_marco

    gsm = benchmark_questions(shared)[500:502]
    records = [{"instruction": q, "response": "<Thought>x</Thought><Output>1</Output>"} for q in ["What is 2+3?", gsm[1]]]
    src = tmp_path / "marco" / "train-00000-of-00001.json"
    src.parent.mkdir()
    src.write_text(dumps_marco(records), encoding="utf-8")
    r = cli("decontaminate", src, "--against", "gsm8k,math500", "--out", tmp_path / "out")
    assert r.code == 0, r.err
    assert "2 rows, 1 kept, 1 removed" in r.err and "1 overlap gsm8k" in r.err
    assert (tmp_path / "out" / "train-00000-of-00001.json").read_text(encoding="utf-8") == dumps_marco(records[:1])


def test_a_local_benchmark_file_and_ngram(tmp_path, cli):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"problem": "how many legs do nine spiders have in total"}) + "\n", encoding="utf-8")
    rows = ["How many legs do nine spiders have?", "Nine spiders: how many legs do they have in total?"]
    prm_export(tmp_path / "in" / "train-00000-of-00001.parquet", rows)
    r = cli("decontaminate", tmp_path / "in", "--against", bench, "--ngram", "4", "--out", tmp_path / "o4", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["kept"] == 0  # both share a 4-gram with the benchmark question
    r = cli("decontaminate", tmp_path / "in", "--against", bench, "--out", tmp_path / "o8", "--json")
    assert json.loads(r.out)["kept"] == 2  # neither shares 8 words in a row


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    """An empty datasets cache (the Hub is offline in tests), so aime24 is not there."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")


def test_bad_input_is_a_clear_error(tmp_path, cli, datasets_cache):
    prm_export(tmp_path / "in" / "train-00000-of-00001.parquet", ["What is 1+1?"])
    r = cli("decontaminate", tmp_path / "in", "--against", "nosuch", "--out", tmp_path / "o")
    assert r.code == 2 and "benchmark nosuch: no such file, and not a built-in benchmark" in r.err
    r = cli("decontaminate", tmp_path / "missing", "--against", "math500", "--out", tmp_path / "o")
    assert r.code == 2 and "no such file or folder" in r.err
    r = cli("decontaminate", tmp_path / "in", "--against", "aime24", "--out", tmp_path / "o")
    assert r.code != 0 and "benchmark aime24 (HuggingFaceH4/aime_2024) is not in the local datasets cache" in r.err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    r = cli("decontaminate", tmp_path / "in", "--against", "math500", "--out", tmp_path / "full")
    assert r.code == 2 and "exists and is not an empty folder" in r.err
    bench = tmp_path / "b.jsonl"
    bench.write_text('{"text": "no question here"}\n', encoding="utf-8")
    r = cli("decontaminate", tmp_path / "in", "--against", bench, "--out", tmp_path / "o")
    assert r.code != 0 and "b.jsonl" in r.err and "no question" in r.err
    r = cli("decontaminate", tmp_path / "in", "--against", "math500", "--out", tmp_path / "o", "--ngram", "0")
    assert r.code == 2 and "--ngram must be between 1 and 64" in r.err
    assert not (tmp_path / "o").exists()
    assert "Traceback" not in r.err


class RecordingEngine(ScriptedEngine):
    def __init__(self):
        super().__init__()
        self.prompts: list[str] = []

    async def generate(self, prompts, *args, **kwargs):
        self.prompts.extend(prompts)
        return await super().generate(prompts, *args, **kwargs)


def test_synthesize_decontaminate_drops_them_before_the_search(shared, tmp_path):
    rng = random.Random(3)
    questions = benchmark_questions(shared)
    planted = [changed(questions[i], i, rng) for i in (0, 1, 500, 501)]
    fresh = [p.question for p in load_problems("builtin:arith", limit=4, seed=5)]
    source = tmp_path / "problems.jsonl"
    source.write_text("".join(json.dumps({"question": q, "answer": "1"}) + "\n" for q in [*planted, *fresh]),
                      encoding="utf-8")
    engine, warned = RecordingEngine(), []
    opts = RunConfig(problems=str(source), out=tmp_path / "run", concurrency=2, decontaminate=("math500", "gsm8k"))
    report = run(opts, SearchConfig(simulations=2), EngineConfig(), engine=engine, warn=warned.append)
    assert report.trees == 4
    assert sorted(t.problem for t in iter_input_trees([tmp_path / "run"])) == sorted(fresh)
    assert engine.prompts and not any(q in p for p in engine.prompts for q in planted)  # never prompted
    assert all(any(q in p for p in engine.prompts) for q in fresh)
    dropped = read_manifest(tmp_path / "run")["decontaminated_problems"]
    assert dropped["against"] == ["math500", "gsm8k"] and dropped["ngram"] == 8
    assert [d["benchmark_item"] for d in dropped["dropped"]] == ["math500#1", "math500#2", "gsm8k#1", "gsm8k#2"]
    assert [d["source"] for d in dropped["dropped"]] == [f"problems.jsonl#{i}" for i in range(1, 5)]
    assert any("4 problem(s) overlap math500, gsm8k and are not searched" in w for w in warned)


def test_synthesize_decontaminate_option_checks_the_name_before_the_model(tmp_path, cli):
    r = cli("synthesize", "--problems", "builtin:arith", "--limit", "2", "--out", tmp_path / "r",
            "--model", tmp_path / "no-model", "--decontaminate", "math500,nosuch")
    assert r.code == 2 and "benchmark nosuch" in r.err


def test_a_jsonl_file_keeps_its_other_lines_byte_for_byte(shared, tmp_path, cli):
    gsm = benchmark_questions(shared)[500]

    def line(question):
        return json.dumps({"messages": [{"role": "user", "content": question},
                                        {"role": "assistant", "content": "It is 18."}]}) + "\n"

    fresh = [line("What is 2 + 3?"), "\n", line("Name a prime number above 90.")]
    src = tmp_path / "sft.jsonl"
    src.write_text(fresh[0] + line(gsm.lower()) + fresh[1] + fresh[2], encoding="utf-8")
    r = cli("decontaminate", src, "--against", "gsm8k", "--out", tmp_path / "out")
    assert r.code == 0, r.err
    assert (tmp_path / "out" / "sft.jsonl").read_text(encoding="utf-8") == "".join(fresh)
    removed = json.loads((tmp_path / "out" / "decontaminate.json").read_text(encoding="utf-8"))["removed"]
    assert [(d["line"], d["benchmark_item"]) for d in removed] == [(2, "gsm8k#1")]

    src.write_text(fresh[0] + '{"messages": [oops\n', encoding="utf-8")
    r = cli("decontaminate", src, "--against", "gsm8k", "--out", tmp_path / "out2")
    assert r.code == 1 and "sft.jsonl: line 2: not valid JSON" in r.err and not (tmp_path / "out2").exists()


def sft_line(question):
    return json.dumps({"messages": [{"role": "user", "content": question},
                                    {"role": "assistant", "content": "It is 18."}]}) + "\n"


def test_line_files_of_one_name_each_get_their_own_output(tmp_path, cli):
    paths = [tmp_path / "x" / "a.jsonl", tmp_path / "q" / "a-2.jsonl", tmp_path / "r" / "a.jsonl"]
    for i, path in enumerate(paths):
        path.parent.mkdir()
        path.write_text(sft_line(f"What is {i} + 100?"), encoding="utf-8")
    r = cli("decontaminate", *paths, "--against", "gsm8k", "--out", tmp_path / "out", "--json")
    assert r.code == 0, r.err
    outputs = [f["output"] for f in json.loads(r.out)["files"]]
    assert len(set(outputs)) == 3
    texts = sorted((tmp_path / "out" / name).read_text(encoding="utf-8") for name in outputs)
    assert texts == sorted(p.read_text(encoding="utf-8") for p in paths)  # none overwritten


def test_an_out_through_a_link_loop_or_to_nowhere_is_a_clear_error(tmp_path, cli):
    src = tmp_path / "sft.jsonl"
    src.write_text(sft_line("What is 2 + 3?"), encoding="utf-8")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    r = cli("decontaminate", src, "--against", "gsm8k", "--out", tmp_path / "loop" / "out")
    assert r.code in (1, 2) and "--out" in r.err and "Traceback" not in r.err, r.err
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "out")
    r = cli("decontaminate", src, "--against", "gsm8k", "--out", tmp_path / "dangling")
    assert r.code in (1, 2) and "dangling" in r.err and "Traceback" not in r.err, r.err
    assert not (tmp_path / "nowhere").exists()


def test_a_push_card_names_a_local_benchmark_file_without_its_path():
    from cotgen.hub import _benchmark_notes

    against = ["math500", "GSM8K", "/home/me/private_eval.jsonl"]
    card = "\n".join(_benchmark_notes({
        "decontaminated_problems": {"against": against, "ngram": 8, "dropped": []},
        "decontamination": {"against": against, "ngram": 8, "removed": 1, "rows": 9},
    }))
    assert "/home/me" not in card
    assert card.count("against math500, GSM8K, private_eval.jsonl (8-gram overlap)") == 2


def test_a_dpo_pair_is_matched_on_its_problem_not_the_reasoning_before_it(shared, tmp_path, cli):
    gsm = benchmark_questions(shared)[500]
    prompts = ["Ann has 3 apples and buys 4 more. How many apples does she have?\n\n" + gsm + "\n\n",
               gsm + "\n\nWe start from the facts given.\n\n"]
    path = tmp_path / "in" / "train-00000-of-00001.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"prompt": prompts, "chosen": ["It is 7.", "x"], "rejected": ["It is 8.", "y"]}), path)
    r = cli("decontaminate", tmp_path / "in", "--against", "gsm8k", "--out", tmp_path / "out", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["format"] == "dpo" and report["kept"] == 1
    removed = json.loads((tmp_path / "out" / "decontaminate.json").read_text(encoding="utf-8"))["removed"]
    assert [d["row"] for d in removed] == [1]  # the fresh problem's pair stays


# Fresh problems whose formulas share a run of 8 numbers, one-letter variables or LaTeX
# commands with a MATH-500 question (#427's [asy] square, #488's 1 + 2 + ... + 12, #122's
# fractions); such runs carry no prose and are not matched.
FRESH_FORMULAS = [
    "[asy] draw((0,0)--(1,0)--(1,1)--(0,1)--cycle); [/asy] Find the area.",
    "What is the value of $1 + 2 + 3 + 4 + 5 + 6 + 7 + 8$?",
    "Find the sum $1+2+3+4+5+6+7+8+9+10$.",
    "[asy]\nunitsize(1cm);\ndraw((0,0)--(4,0)--(4,3)--cycle);\nlabel(\"$A$\",(0,0),SW);\n[/asy]\n"
    "The right triangle above has legs 3 and 4. What is the length of its hypotenuse?",
    "Let $f(x) = 2x^2 - 3x + 1$. Compute $f(0) + f(1) + f(2) + f(3) + f(4)$.",
    "Solve for $x$: $\\frac{x}{2} + \\frac{x}{3} + \\frac{x}{4} = 13$.",
    "If $a + b = 7$ and $a - b = 1$, what is $a^2 - b^2$ divided by $a + b$?",
    "Evaluate $\\sqrt{1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12 + 13 + 14 + 15}$.",
    "The matrix $\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}$ is multiplied by $\\begin{pmatrix} 0 & 1 \\\\ 1 & 0 \\end{pmatrix}$. Find the trace of the product.",
    "How many integers $n$ with $1 \\le n \\le 100$ satisfy $n^2 \\equiv 1 \\pmod{8}$?",
]


def test_fresh_problems_sharing_only_a_formula_with_a_benchmark_question_stay(shared):
    index = BenchmarkIndex.load(["math500", "gsm8k"])
    assert [q for q in FRESH_FORMULAS if index.match(q) is not None] == []
    # a question that is all formula is still matched when it is copied whole
    question = next(i.question for i in index.items if i.where == "math500#488")
    assert index.match(question.upper().replace(" ", "  ")).item.where == "math500#488"
