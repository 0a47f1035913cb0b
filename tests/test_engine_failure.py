"""A failed engine stops the run without recording its trees in flight; a rerun retries
every tree that is missing or recorded as failed, and leaves one record per problem."""

from __future__ import annotations

import pytest
from scripted_engine import ScriptedEngine

from cotgen.engines.config import EngineConfig
from cotgen.errors import EngineFailed, RunError
from cotgen.io.layout import read_manifest, shard_paths
from cotgen.io.trees import iter_input_trees as iter_trees
from cotgen.problems import load_problems
from cotgen.search import SearchConfig
from cotgen.synthesize import RunConfig, run

CFG = SearchConfig(simulations=3, parallel=1)


def Engine(die_after=None, fail_on=None):
    """Dies (EngineFailed) after `die_after` calls, or refuses prompts naming `fail_on` (RunError)."""
    return ScriptedEngine(fail_on=fail_on, fail_with=RunError, die_after=die_after)


def _opts(out):
    return RunConfig(problems="builtin:arith", out=out, limit=6, concurrency=2, shard_trees=1)


def test_a_dead_engine_stops_the_run_and_records_no_tree_in_flight(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(EngineFailed, match=r"the engine died\. The run stopped: \d+ finished tree\(s\) are saved"):
        run(_opts(out), CFG, EngineConfig(), engine=Engine(die_after=10))
    saved = list(iter_trees(shard_paths(out)))
    assert 1 <= len(saved) < 6
    assert all(t.error is None for t in saved)  # the trees the failure hit were not recorded
    summary = run(_opts(out), CFG, EngineConfig(), engine=Engine())
    assert summary.already_done == len(saved) and summary.trees == 6 - len(saved)
    ids = [t.id for t in iter_trees([out])]
    assert len(ids) == len(set(ids)) == 6


def test_a_rerun_retries_failed_trees_and_drops_their_old_records(tmp_path):
    out = tmp_path / "run"
    bad = load_problems("builtin:arith", limit=6).problems[2]
    first = run(_opts(out), CFG, EngineConfig(), engine=Engine(fail_on=bad.question))
    assert first.trees == 6 and first.failed == 1
    assert read_manifest(out)["counts"] == {"trees": 6, "failed": 1}
    shards = len(shard_paths(out))

    again = run(_opts(out), CFG, EngineConfig(), engine=Engine())
    assert again.already_done == 5 and again.trees == 1 and again.failed == 0
    trees = list(iter_trees([out]))
    assert len(trees) == len({t.id for t in trees}) == 6
    assert all(t.error is None for t in trees)
    assert read_manifest(out)["counts"] == {"trees": 6, "failed": 0}
    # The failed tree's shard held only it (shard_trees=1): it is gone, the retry is new.
    assert len(shard_paths(out)) == shards
    assert sum(s["rows"] for s in read_manifest(out)["shards"]) == 6

    third = run(_opts(out), CFG, EngineConfig(), engine=Engine())
    assert third.trees == 0 and third.already_done == 6
