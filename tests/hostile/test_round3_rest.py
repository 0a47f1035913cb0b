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


# 12: every command linear in the nodes of a tree ------------------------------------------

# The README's bound ("Crash safety"): each reading command on one 100,000-node tree. Measured
# 1.5-8 s on a loaded 2-core machine; inspect took 79 s at 20k deep and best_correct_path
# (sft, marco, view) grew with correct leaves x depth.
BIG_TREE_SECONDS = 60


def comb_tree(n: int):
    """A spine of steps with a correct conclusion under each: n/2 deep and n/2 correct leaves
    of equal value (every one ties on value; paths differ in length)."""
    from cotgen.tree import Tree

    t = Tree.new("What is 1 + 1?", "2", model="tiny", source="big")
    parent = 0
    while len(t.nodes) < n - 1:
        step = t.add(parent, "step", " Go on.", rating="positive", value=1.0, visits=1).id
        t.add(step, "conclusion", "So \\boxed{2}.", terminal=True, correct=True, rating="positive", value=1.0, visits=1)
        parent = step
    return t


@pytest.mark.slow
def test_every_reading_command_is_linear_on_a_100k_node_tree(cli, tmp_path: Path):
    import time

    from cotgen.io.writers import TreeShardWriter

    run = tmp_path / "run"
    TreeShardWriter(run, settings={"model": "tiny"}).write([comb_tree(100_000)])
    commands = {
        "validate": ("validate", run),
        "stats": ("stats", run, "--json"),
        "inspect": ("inspect", run),
        "view": ("view", run, "-o", tmp_path / "site"),
        "dedupe": ("dedupe", run, "-o", tmp_path / "dd", "--quiet"),
        **{f"export {f}": ("export", run, "-f", f, "-o", tmp_path / f) for f in ("sft", "marco", "openlongcot", "dpo")},
    }
    for name, args in commands.items():
        t0 = time.perf_counter()
        r = cli(*args)
        took = time.perf_counter() - t0
        assert r.code == 0, (name, r.err[-2000:])
        assert took < BIG_TREE_SECONDS, f"{name} took {took:.1f}s on a 100k-node tree"
    r = cli("inspect", run)
    assert r.out.count("\n") >= 100_000 and max(map(len, r.out.splitlines())) < 400


def test_best_correct_path_in_linear_time_picks_what_walking_each_path_picks():
    """The one-pass best_correct_path against the walk of every candidate it replaced, on
    random trees where values tie and ids are shuffled (the lexicographic tie-break)."""
    import random

    from cotgen.formats.paths import _best_correct_path_by_walking, best_correct_path
    from cotgen.tree import Tree

    rng = random.Random(19)
    for _ in range(2000):
        t = Tree.new("p", "1")
        for _ in range(rng.randint(1, 30)):
            kind = rng.choice(["step", "step", "critic", "refine", "conclusion"])
            node = t.add(rng.choice(t.nodes).id, kind, "x", value=rng.choice([0.0, 0.5, 1.0]))
            if kind != "critic" and rng.random() < 0.5:
                node.terminal, node.correct = True, True
        if rng.random() < 0.5:
            ids = list(range(1, len(t.nodes)))
            rng.shuffle(ids)
            new = {0: 0, -1: -1, **{old + 1: ids[old] for old in range(len(ids))}}
            for node in t.nodes:
                node.id, node.parent = new[node.id], new[node.parent]
        fast, walked = best_correct_path(t), _best_correct_path_by_walking(t)
        assert (fast and [n.id for n in fast]) == (walked and [n.id for n in walked])


# 13: grading has a time bound in every thread ---------------------------------------------


def _grade_in_a_thread(text: str, gold: str, timeout: int, wait: float):
    import threading

    from cotgen.verify import grade

    out: list = []
    thread = threading.Thread(target=lambda: out.append(grade(text, gold, timeout=timeout)), daemon=True)
    thread.start()
    thread.join(wait)
    assert out, f"grading {text!r} outside the main thread did not finish in {wait} s"
    return out[0]


def test_a_pathological_answer_graded_outside_the_main_thread_is_wrong_in_bounded_time():
    # 10^(10^10): math-verify's SIGALRM is off in a thread, so sympy worked on it for ever.
    result = _grade_in_a_thread("\\boxed{10^{10^{10}}}", "2", timeout=1, wait=60)
    assert result.correct is False and result.answer == "10^{10^{10}}"
    assert result.reason and "time limit" in result.reason
    # The grader still grades the next answer, right.
    assert _grade_in_a_thread("\\boxed{\\frac{2}{4}}", "0.5", timeout=1, wait=60).correct is True


def test_an_answer_past_the_hard_limit_has_the_grading_process_killed(monkeypatch):
    from cotgen.verify import GradingProcess

    process = GradingProcess()
    try:
        assert process.compare("\\frac{1}{2}", "0.5", 5).correct is True  # started, warm
        monkeypatch.setattr(GradingProcess, "hard_limit", staticmethod(lambda timeout: 0.001))
        first = process._proc
        result = process.compare("\\frac{3}{4}", "0.75", 5)
        assert result.correct is False and "grading took over" in (result.reason or "")
        assert first.poll() is not None  # killed, not left running
        monkeypatch.undo()
        assert process.compare("\\frac{5}{10}", "0.5", 5).correct is True  # a new child
    finally:
        process.close()


def test_a_grading_child_dead_before_the_question_grades_it_wrong_then_recovers():
    from cotgen.verify import GradingProcess

    process = GradingProcess()
    try:
        assert process.compare("\\frac{1}{2}", "0.5", 5).correct is True
        dead = process._proc
        dead.kill()
        dead.wait()
        dead.poll = lambda: None  # as if it died between poll() and the write
        result = process.compare("\\frac{3}{4}", "0.75", 5)
        assert result.correct is False and result.reason == "the grading process died"
        assert process.compare("\\frac{5}{10}", "0.5", 5).correct is True  # a new child
    finally:
        process.close()


def test_an_interrupt_while_grading_leaves_no_stale_answer_for_the_next_question(monkeypatch):
    import select as select_module

    from cotgen.verify import GradingProcess

    process = GradingProcess()
    try:
        assert process.compare("\\frac{1}{2}", "0.5", 5).correct is True
        real = select_module.select

        def interrupted(*args, **kw):
            raise KeyboardInterrupt

        monkeypatch.setattr(select_module, "select", interrupted)
        with pytest.raises(KeyboardInterrupt):
            process.compare("\\frac{3}{4}", "0.75", 5)  # its child answers True, unread
        monkeypatch.setattr(select_module, "select", real)
        assert process.compare("\\frac{3}{4}", "0.5", 5).correct is False  # not the stale True
    finally:
        process.close()


# 7: a problem that cannot be encoded ------------------------------------------------------


def test_a_problem_holding_a_lone_surrogate_is_refused_at_load_naming_the_row(cli, tmp_path: Path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text('{"question": "What is 2+2?", "answer": "4"}\n'
                        '{"question": "What is 1+1? \\ud800", "answer": "2"}\n')
    r = cli("synthesize", "--model", tmp_path / "no-such-model", "--problems", problems, "--out", tmp_path / "run")
    assert r.code == 1, r.err
    error_line(r, str(problems), "line 2", "lone surrogate")
    assert "engine failed" not in r.err


def test_a_prompt_the_tokenizer_cannot_take_fails_its_request_not_the_engine(tiny_model_dir):
    import asyncio

    from cotgen.engines import build_engine
    from cotgen.engines.config import EngineConfig
    from cotgen.errors import DataError

    engine = build_engine(EngineConfig(model=str(tiny_model_dir)))

    def generate(prompts):
        from cotgen.engines.base import GenerationParams

        return engine.generate(prompts, GenerationParams(max_tokens=4, temperature=0.0))

    async def calls():
        with pytest.raises(DataError, match="lone surrogate"):
            await generate(["What is 1+1? \ud800"])
        # The engine still serves the next request.
        out = await generate(["What is 1+1?"])
        await engine.close()
        return out

    assert len(asyncio.run(calls())[0]) == 1


# 5: the Marco-o1 round trip --------------------------------------------------------------


def _tree_saying(texts: list[str]):
    from cotgen.tree import Tree

    t = Tree.new(f"What is 2 + 2? ({len(texts)} steps)", "4", model="tiny")
    parent = 0
    for text in texts:
        parent = t.add(parent, "step", text, rating="positive", value=0.9, visits=1).id
    t.add(parent, "conclusion", "So the answer is \\boxed{4}.", terminal=True, correct=True, rating="positive",
          value=1.0, visits=1)
    return t


def test_a_step_saying_the_reflection_phrase_is_refused_by_the_marco_export(cli, tmp_path: Path):
    from cotgen.formats.paths import REFLECTION
    from cotgen.io.writers import TreeShardWriter

    poisoned = _tree_saying(["Two and two.", "Add them.", REFLECTION, "That makes four."])
    TreeShardWriter(tmp_path / "run", settings={"model": "tiny"}).write([poisoned, _tree_saying(["Add."])])
    for journey in ((), ("--journey",)):
        out = tmp_path / f"marco{len(journey)}"
        r = cli("export", tmp_path / "run", "-f", "marco", *journey, "-o", out, "--json")
        no_traceback(r)
        assert "reflection phrase" in r.out + r.err, r.err
        records = json.loads(next(out.glob("*.json")).read_text())
        assert len(records) == 1 and REFLECTION not in records[0]["response"]
        # What was written reads back and writes again byte for byte.
        r = cli("export", out, "-f", "marco", "-o", tmp_path / f"again{len(journey)}")
        assert r.code == 0, r.err
        again = json.loads(next((tmp_path / f"again{len(journey)}").glob("*.json")).read_text())
        assert again == records


# 8: one writer per export folder ----------------------------------------------------------


def test_a_second_export_into_one_folder_is_refused_naming_the_holder(cli, tmp_path: Path):
    from cotgen.io.runfolder import RunLock

    src = run_folder(tmp_path / "run", n=4)
    out = tmp_path / "export"
    with RunLock(out):  # what a first export holds while it writes
        r = cli("export", src, "-f", "openlongcot", "-o", out)
        assert r.code == 2, r.err
        error_line(r, str(out), "another cotgen process")
        assert [p.name for p in out.iterdir()] == [".lock"]
    r = cli("export", src, "-f", "openlongcot", "-o", out)
    assert r.code == 0, r.err
    assert sorted(p.name for p in out.iterdir()) == [  # no lock left; the provenance sidecars
        "_train.provenance.json", "_train.provenance.jsonl", "train-00000-of-00001.parquet"]


def test_a_shard_left_by_a_killed_export_is_removed_by_the_next(cli, tmp_path: Path):
    src = run_folder(tmp_path / "run", n=4)
    out = tmp_path / "export"
    out.mkdir()
    # A SIGTERM mid-write leaves `.train-00000.parquet.tmp-<pid>` (hidden: nothing reads it).
    (out / ".train-00000.parquet.tmp-424242").write_bytes(b"PAR1 half a shard")
    (out / ".other-00003.json.tmp-7").write_text("[")
    (out / "notes.txt").write_text("mine")
    r = cli("export", src, "-f", "openlongcot", "-o", out)
    assert r.code == 0, r.err
    assert sorted(p.name for p in out.iterdir()) == [
        "_train.provenance.json", "_train.provenance.jsonl", "notes.txt", "train-00000-of-00001.parquet"]


def test_a_trees_folder_linked_into_a_second_run_folder_is_refused(cli, tmp_path: Path):
    first = run_folder(tmp_path / "first")
    second = tmp_path / "second"
    second.mkdir()
    (second / "trees").symlink_to(first / "trees")  # two locks, one trees/ folder
    before = sorted(p.name for p in (first / "trees").iterdir())
    r = cli("synthesize", "--model", tmp_path / "no-such-model", "--problems", "builtin:arith", "--limit", "1",
            "--out", second)
    assert r.code == 2, r.err
    error_line(r, str(second / "trees"), "symbolic link")
    assert sorted(p.name for p in (first / "trees").iterdir()) == before


# 4: a local model is published by its name, never its path --------------------------------


def _hub_fixtures():
    """The fake Hub and the push runner of tests/hub (its conftest), for this module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hub_conftest", Path(__file__).parents[1] / "hub" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hub_conftest"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_hub = _hub_fixtures()
hub, push_env, run_push = _hub.hub, _hub.push_env, _hub.run_push


@pytest.mark.parametrize("known_hub_id", [False, True])
def test_a_run_of_a_local_model_publishes_no_local_path(hub, run_push, tmp_path: Path, known_hub_id: bool):
    import pyarrow.parquet as pq

    from cotgen.io.writers import TreeShardWriter

    model = tmp_path / "home" / "someone" / "checkpoints" / "my-qwen"
    model.mkdir(parents=True)
    name_or_path = "Qwen/Qwen2.5-0.5B-Instruct" if known_hub_id else str(model)
    (model / "config.json").write_text(json.dumps({"_name_or_path": name_or_path, "model_type": "qwen2"}))
    trees = [good_tree(i) for i in range(3)]
    prm = tmp_path / "home" / "someone" / "prms" / "my-prm"  # --value prm --value-model <folder>
    prm.mkdir(parents=True)
    for t in trees:
        t.model = str(model)  # what synthesize records for --model <folder>
        t.config = {**t.config, "value_mode": "prm", "value_model": str(prm)}
    settings = {"model": str(model), "search": {"simulations": 2, "value_mode": "prm", "value_model": str(prm)}}
    TreeShardWriter(tmp_path / "run", settings=settings).write(trees)

    r = run_push(tmp_path / "run", "--repo", "me/local-model", "--json")
    assert r.code == 0, r.err
    files = hub.files("me/local-model")
    public = "Qwen/Qwen2.5-0.5B-Instruct" if known_hub_id else "my-qwen"
    card = files["README.md"].decode()
    assert f'"model": "{public}"' in card
    for name, data in files.items():
        assert str(tmp_path).encode() not in data, name
    shard = tmp_path / "pushed.parquet"
    shard.write_bytes(files["data/trees/train-00000-of-00001.parquet"])
    assert set(pq.read_table(shard).column("model").to_pylist()) == {public}
    assert {json.loads(c)["value_model"] for c in pq.read_table(shard).column("config").to_pylist()} == {"my-prm"}
    # The run folder itself is left as it was.
    assert {t.model for t in trees} == {str(model)}


# Smaller ones ----------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["a-b", "a..b", ".a", "a."])
def test_push_refuses_a_split_name_datasets_would_refuse(cli, tmp_path: Path, split: str):
    r = cli("push", run_folder(tmp_path / "run"), "--repo", "me/x", "--split", split, "--endpoint", "http://127.0.0.1:9")
    assert r.code == 2, r.err
    error_line(r, f"split '{split}'", "datasets accepts")


def test_view_never_draws_node_ids_a_browser_cannot_tell_apart(cli, tmp_path: Path):
    from corpus import node_ids_beyond_2_53

    r = cli("view", node_ids_beyond_2_53(tmp_path), "-o", tmp_path / "site")
    assert r.code == 0, r.err
    assert "beyond 2^53" in r.err
    assert len(list((tmp_path / "site" / "trees").iterdir())) == 2  # the other two trees
