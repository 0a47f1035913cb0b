"""The whole synthesize loop: on the tiny model through the CLI, and on scripted engines."""

import json
import shutil
from pathlib import Path

import pytest
from scripted_engine import ScriptedEngine

from cotgen.engines.config import EngineConfig
from cotgen.errors import Interrupted, UsageError
from cotgen.io.layout import read_manifest, shard_paths
from cotgen.io.trees import iter_input_trees
from cotgen.policy import DEFAULT_PROMPTS
from cotgen.problems import load_problems
from cotgen.search import SearchConfig
from cotgen.synthesize import RunConfig, run

SMALL = ["--simulations", "6", "--branch", "2", "--max-depth", "5", "--max-step-tokens", "12", "--max-tokens", "24",
         "--critics", "1", "--concurrency", "3", "--parallel", "2",
         "--shard-trees", "2", "--max-batch", "16", "--seed", "3"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    """One small synthesize run on the tiny model, shared by the tests below."""
    from cotgen.cli.main import run as cli_run

    out = tmp_path_factory.mktemp("synth") / "run"
    code = cli_run(["synthesize", "--model", str(tiny_model_dir), "--problems", "builtin:arith",
                    "--limit", "4", "--out", str(out), "--quiet", *SMALL])
    assert code == 0
    return out


def test_tiny_run_writes_valid_trees(tiny_run):
    trees = list(iter_input_trees([tiny_run]))
    assert len(trees) == 4 and len({t.id for t in trees}) == 4
    assert [p.name for p in shard_paths(tiny_run)] == ["part-00000.parquet", "part-00001.parquet"]
    manifest = read_manifest(tiny_run)
    assert manifest["counts"] == {"trees": 4, "failed": 0}
    assert manifest["settings"]["search"]["simulations"] == 6
    for t in trees:
        t.check()
        assert t.error is None and t.config["critics"] == 1
        assert t.stats.simulations == 6 and t.stats.generated_tokens > 0
        kids = t.children()
        for n in t.nodes:
            if kids[n.id]:
                assert n.visits >= sum(c.visits for c in kids[n.id])
        assert sum(n.visits for n in t.leaves() if n.parent != -1) <= 6  # each rollout ends at one leaf
    by_kind = {}
    for t in trees:
        idx = t.by_id()
        for n in t.nodes:
            by_kind.setdefault(n.kind, []).append(idx[n.parent].kind if n.parent >= 0 else None)
    assert set(by_kind["critic"]) <= {"step", "refine"} and by_kind["critic"]
    assert set(by_kind["refine"]) == {"critic"}


def test_rerun_adds_nothing(tiny_run, tiny_model_dir, cli):
    before = [p.stat().st_mtime_ns for p in shard_paths(tiny_run)]
    r = cli("synthesize", "--model", tiny_model_dir, "--problems", "builtin:arith", "--limit", "4",
            "--out", tiny_run, "--json", "--quiet", *SMALL)
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["trees"] == 0 and summary["already_done"] == 4
    assert [p.stat().st_mtime_ns for p in shard_paths(tiny_run)] == before


def test_changed_settings_into_the_same_folder_are_refused(tiny_run, tiny_model_dir, cli):
    args = [a if a != "6" else "7" for a in SMALL]  # --simulations 7
    r = cli("synthesize", "--model", tiny_model_dir, "--problems", "builtin:arith", "--limit", "5",
            "--out", tiny_run, *args)
    assert r.code == 2
    assert "other settings" in r.err and "simulations: 6 -> 7" in r.err


def test_a_folder_of_the_earlier_search_is_refused_on_resume(tiny_run, tiny_model_dir, tmp_path, cli):
    # The same folder as a run of the one-level-per-simulation search had left it.
    old = tmp_path / "old-run"
    shutil.copytree(tiny_run, old)
    manifest = json.loads((old / "manifest.json").read_text())
    search = manifest["settings"]["search"]
    for name in ("samples", "probe", "negative_after", "critics", "max_tokens"):
        search.pop(name)
    search.update(critic_rate=0.15, conclude_rate=0.2, rollouts=4, rollout_tokens=256)
    (old / "manifest.json").write_text(json.dumps(manifest))
    r = cli("synthesize", "--model", tiny_model_dir, "--problems", "builtin:arith", "--limit", "4",
            "--out", old, *SMALL)
    assert r.code == 2 and "Traceback" not in r.err
    assert "earlier search" in r.err and "another --out" in r.err
    r = cli("validate", old)  # its trees stay readable
    assert r.code == 0, r.out + r.err


def test_exports_of_the_run_validate(tiny_run, tmp_path, cli):
    r = cli("export", tiny_run, "--format", "openlongcot", "--out", tmp_path / "olc")
    assert r.code == 0, r.err
    files = sorted((tmp_path / "olc").glob("*.parquet"))
    assert files
    r = cli("validate", *files)
    assert r.code == 0, r.out + r.err


def test_broken_prompts_fail_before_the_model_loads(tmp_path, cli):
    folder = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS, folder)
    (folder / "refine.txt").write_text("{problem} only\n")
    r = cli("synthesize", "--model", tmp_path / "no-such-model", "--problems", "builtin:arith",
            "--limit", "2", "--out", tmp_path / "run", "--prompts", folder)
    assert r.code == 2
    assert "refine.txt: lacks the placeholder(s) {steps}, {step}, {critic}" in r.err
    assert not (tmp_path / "run").exists()


def test_bad_option_is_a_usage_error(tmp_path, cli):
    r = cli("synthesize", "--problems", "builtin:arith", "--out", tmp_path / "r", "--branch", "0")
    assert r.code == 2 and "branch must be >= 1" in r.err


def _opts(out, **kw):
    return RunConfig(problems="builtin:arith", out=out, limit=4, concurrency=2, shard_trees=1, **kw)


def test_a_failed_tree_is_recorded_and_the_run_goes_on(tmp_path):
    problems = load_problems("builtin:arith", limit=4)
    bad = problems.problems[1]
    summary = run(_opts(tmp_path / "run"), SearchConfig(simulations=4), EngineConfig(),
                  engine=ScriptedEngine(fail_on=bad.question))
    assert summary.trees == 4 and summary.failed == 1
    trees = {t.problem: t for t in iter_input_trees([tmp_path / "run"])}
    assert trees[bad.question].error == "DataError: the engine refused this prompt"
    assert all(t.error is None for q, t in trees.items() if q != bad.question)
    for t in trees.values():
        t.check()
    assert read_manifest(tmp_path / "run")["counts"]["failed"] == 1


def test_interrupt_saves_finished_trees_and_a_rerun_completes(tmp_path):
    out = tmp_path / "run"
    cfg = SearchConfig(simulations=3, parallel=1)
    with pytest.raises(Interrupted, match="saved"):
        run(_opts(out), cfg, EngineConfig(), engine=ScriptedEngine(interrupt_after=7))
    saved = {t.id for t in iter_input_trees(shard_paths(out))}
    assert 1 <= len(saved) < 4
    summary = run(_opts(out), cfg, EngineConfig(), engine=ScriptedEngine())
    assert summary.already_done == len(saved) and summary.trees == 4 - len(saved)
    ids = [t.id for t in iter_input_trees([out])]
    assert len(ids) == len(set(ids)) == 4


def test_same_seed_same_trees(tmp_path):
    cfg = SearchConfig(simulations=6, critics=1, parallel=3)

    def nodes(folder: Path):
        run(_opts(folder), cfg, EngineConfig(), engine=ScriptedEngine())
        return sorted((t.id, [(n.parent, n.kind, n.text, n.visits) for n in t.nodes]) for t in iter_input_trees([folder]))

    assert nodes(tmp_path / "a") == nodes(tmp_path / "b")


@pytest.mark.parametrize("fmt", ["openlongcot", "marco", "sft", "prm", "dpo", "processbench"])
def test_tiny_run_exports_and_validates_in_every_format(tiny_run, tmp_path, cli, fmt):
    out = tmp_path / fmt
    r = cli("export", tiny_run, "--format", fmt, "--out", out, "--json", "--quiet")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["trees_read"] == 4
    if fmt != "openlongcot":
        # The random tiny model's rollouts rarely reach an answer: a tree with no correct path
        # (marco, sft), no answered path (prm) or no pair (dpo) is refused with its reason
        # counted, and nothing unparsable is written.
        if summary["rows_written"] == 0:
            assert sum(summary["skipped"].values()) == 4
            wanted = {"marco": "no correct root-to-leaf path", "sft": "no correct root-to-leaf path",
                      "prm": "no terminal leaf", "dpo": "no sibling pair",
                      "processbench": "no terminal leaf"}[fmt]
            assert all(wanted in reason for reason in summary["skipped"])
            return
    assert summary["rows_written"] > 0
    r = cli("validate", out, "--json")
    assert r.code == 0, r.out
    reports = [json.loads(line) for line in r.out.splitlines()]
    assert {rep["format"] for rep in reports} == {fmt}
    assert sum(rep["rows"] for rep in reports) == summary["rows_written"]


def test_the_library_run_reports_progress_and_prints_nothing(tmp_path, capfd):
    seen: list = []
    report = run(_opts(tmp_path / "run"), SearchConfig(simulations=3), EngineConfig(),
                 engine=ScriptedEngine(), progress=seen.append)
    assert report.ran and report.trees == 4 and report.as_json()["trees"] == 4
    assert seen[0].done == 0 and seen[-1].done == 4 and all(p.total == 4 for p in seen)
    assert seen[-1].simulations == report.simulations
    assert capfd.readouterr() == ("", "")
    again = run(_opts(tmp_path / "run"), SearchConfig(simulations=3), EngineConfig(), engine=ScriptedEngine())
    assert not again.ran and set(again.as_json()) == {"out", "problems", "dropped_rows", "already_done", "too_long",
                                                     "no_answer", "retried_failed", "trees", "failed"}


def test_a_timing_only_setting_may_change_on_resume(tmp_path):
    run(_opts(tmp_path / "run"), SearchConfig(simulations=3, parallel=1),
        EngineConfig(), engine=ScriptedEngine())
    report = run(_opts(tmp_path / "run"), SearchConfig(simulations=3, parallel=2), EngineConfig(), engine=ScriptedEngine())
    assert report.already_done == 4
    with pytest.raises(UsageError, match="simulations: 3 -> 4"):
        run(_opts(tmp_path / "run"), SearchConfig(simulations=4), EngineConfig(), engine=ScriptedEngine())
