"""The local executor: one TreeWorker in this process, and the stop a budget would ask for."""

from __future__ import annotations

import pytest
from scripted_engine import ScriptedEngine

from cotgen.engines.config import EngineConfig
from cotgen.errors import RunError
from cotgen.executors.local import LocalExecutor
from cotgen.executors.worker import WorkerConfig
from cotgen.io.layout import read_manifest, shard_paths
from cotgen.io.trees import iter_input_trees
from cotgen.io.writers import TreeShardWriter
from cotgen.problems import load_problems
from cotgen.search import SearchConfig
from cotgen.stopping import StopRequest
from cotgen.synthesize import RunConfig, run

CFG = SearchConfig(simulations=3, parallel=1)


def test_stop_ask_ends_the_run_with_its_finished_trees_saved(tmp_path):
    problems = load_problems("builtin:arith", limit=8).problems
    writer = TreeShardWriter(tmp_path)
    spec = WorkerConfig(engine=EngineConfig(), search=CFG, out=str(tmp_path), tag=None, concurrency=1,
                        shard_trees=100)
    stop = StopRequest()
    seen = []

    def progress(p):
        seen.append(p)
        if p.done >= 2:
            stop.ask("over budget")

    result = LocalExecutor(ScriptedEngine()).run(problems, spec, writer.record, progress, stop)
    assert result.stopped == "over budget"
    # The finished trees were written on the way out, though no shard was full.
    saved = list(iter_input_trees(shard_paths(tmp_path)))
    assert 2 <= len(saved) < len(problems) and len(result.saved) == len(saved)
    assert read_manifest(tmp_path)["counts"]["trees"] == len(saved)
    assert seen[-1].done == len(saved)


def test_a_run_stopped_by_ask_is_marked_interrupted_and_resumes(tmp_path, monkeypatch):
    import cotgen.synthesize as synthesize

    class Budget(LocalExecutor):
        def run(self, problems, spec, record_shard, progress, stop):
            def watch(p):
                if p.done >= 1:
                    stop.ask("spent $1.00 of --max-cost 1.00")

            return super().run(problems, spec, record_shard, watch, stop)

    out = tmp_path / "run"
    opts = RunConfig(problems="builtin:arith", out=out, limit=5, concurrency=1)
    monkeypatch.setattr(synthesize, "LocalExecutor", Budget)
    with pytest.raises(RunError, match=r"spent \$1.00 of --max-cost 1.00: \d+ finished tree\(s\) are saved"):
        run(opts, CFG, EngineConfig(), engine=ScriptedEngine())
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted"
    done = manifest["counts"]["trees"]
    assert 1 <= done < 5
    monkeypatch.undo()
    again = run(opts, CFG, EngineConfig(), engine=ScriptedEngine())
    assert again.already_done == done and again.trees == 5 - done
    assert read_manifest(out)["status"] == "complete"


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_while_the_last_shards_are_written_still_stops_the_run(tmp_path, monkeypatch, sig, code):
    """The signal waits for the last shards, then stops the run as anywhere else: it is not
    dropped (a supervisor's TERM must end in 143 however late it comes)."""
    import signal

    import cotgen.executors.local as local
    from cotgen.errors import Interrupted
    from cotgen.executors.worker import TreeWorker

    class SignalledAtStop(TreeWorker):
        async def stop(self, save=True):
            signal.raise_signal(getattr(signal, sig))
            return await super().stop(save)

    monkeypatch.setattr(local, "TreeWorker", SignalledAtStop)
    out = tmp_path / "run"
    with pytest.raises(Interrupted) as stopped:
        run(RunConfig(problems="builtin:arith", out=out, limit=3, concurrency=2), CFG, EngineConfig(),
            engine=ScriptedEngine())
    assert stopped.value.exit_code == code
    # Every tree was searched and is saved; the folder says the run was stopped.
    assert len(list(iter_input_trees(shard_paths(out)))) == 3
    assert read_manifest(out)["status"] == "interrupted"
