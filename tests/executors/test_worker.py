"""The Ray worker's search loop and the driver's work queue, in-process (no Ray needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from scripted_engine import ScriptedEngine

from cotgen.engines.config import EngineConfig
from cotgen.executors.ray_cluster import RayConfig, WorkQueue
from cotgen.executors.worker import TreeWorker, WorkerConfig
from cotgen.io.layout import TREE_SHARD, shard_paths
from cotgen.io.trees import iter_input_trees as iter_trees
from cotgen.io.writers import TreeShardWriter
from cotgen.problems import load_problems
from cotgen.search import SearchConfig
from cotgen.synthesize import RunConfig, run

CFG = SearchConfig(simulations=5, critics=1, parallel=2)


def _items(n: int):
    problems = load_problems("builtin:arith", limit=n).problems
    return problems, [(i, p.question, p.answer, p.source) for i, p in enumerate(problems)]


def _spec(out: Path, tag: str = "w0xab12", **kw) -> WorkerConfig:
    (out / "trees").mkdir(parents=True, exist_ok=True)
    return WorkerConfig(engine=EngineConfig(), search=CFG, out=str(out), tag=tag, **kw)


async def _drain(worker: TreeWorker, n: int) -> list[dict]:
    """Poll until `n` trees are in shards; the events, in order."""
    shards, saved = [], 0
    while saved < n:
        events = await worker.poll(wait_s=5.0)
        shards.extend(events["shards"])
        saved += sum(len(s["trees"]) for s in events["shards"])
    return shards


def test_worker_trees_equal_a_local_run_and_its_shards_carry_its_tag(tmp_path):
    problems, items = _items(5)

    async def go():
        worker = TreeWorker(_spec(tmp_path / "ray", concurrency=2, shard_trees=2), engine=ScriptedEngine())
        info = await worker.start()
        assert info["model"] == "scripted" and info["tag"] == "w0xab12"
        await worker.submit(items[:3])
        await worker.submit(items[3:])
        shards = await _drain(worker, 5)
        await worker.stop(save=True)
        return shards

    shards = asyncio.run(go())
    # Full shards of 2, then the last tree alone once the worker ran out of work.
    assert [s["rows"] for s in shards] == [2, 2, 1]
    assert sorted(t["index"] for s in shards for t in s["trees"]) == [0, 1, 2, 3, 4]
    names = [p.name for p in shard_paths(tmp_path / "ray")]
    assert names == [s["name"] for s in shards]
    assert all(TREE_SHARD.match(n)["tag"] == "w0xab12" for n in names)

    run(RunConfig(problems="builtin:arith", out=tmp_path / "local", limit=5, concurrency=2, shard_trees=2),
        CFG, EngineConfig(), engine=ScriptedEngine())

    def nodes(folder):
        return sorted((t.id, [(n.parent, n.kind, n.text, n.visits, n.rating) for n in t.nodes])
                      for t in iter_trees(shard_paths(folder)))

    assert nodes(tmp_path / "ray") == nodes(tmp_path / "local")
    # A worker writes shards only (the driver keeps the manifest): read them by name.
    assert {t.id for t in iter_trees(shard_paths(tmp_path / "ray"))} == {p.id for p in problems}


def test_stop_with_save_writes_the_finished_trees_and_cancels_the_rest(tmp_path):
    _, items = _items(6)

    class Slow(ScriptedEngine):
        """Problem 5's tree never finishes: it is in flight when the worker stops."""

        async def generate(self, prompts, params):
            if any(items[5][1] in p for p in prompts):
                await asyncio.sleep(3600)
            return await super().generate(prompts, params)

    async def go():
        worker = TreeWorker(_spec(tmp_path, shard_trees=100, flush_s=3600), engine=Slow())
        await worker.start()
        await worker.submit(items)
        finished = []
        while len(finished) < 5:
            finished += (await worker.poll(wait_s=5.0))["finished"]
        assert not shard_paths(tmp_path)  # buffered: fewer than shard_trees, not idle
        return await worker.stop(save=True)

    events = asyncio.run(go())
    assert [s["rows"] for s in events["shards"]] == [5]
    assert sorted(t["index"] for t in events["shards"][0]["trees"]) == [0, 1, 2, 3, 4]
    assert events["in_flight"] == 0
    assert len(list(iter_trees(shard_paths(tmp_path)))) == 5


def test_a_stale_buffer_is_written_after_flush_s(tmp_path):
    _, items = _items(3)

    class Slow(ScriptedEngine):
        async def generate(self, prompts, params):
            if any(items[2][1] in p for p in prompts):
                await asyncio.sleep(3600)
            return await super().generate(prompts, params)

    async def go():
        worker = TreeWorker(_spec(tmp_path, shard_trees=100, flush_s=0.2), engine=Slow())
        await worker.start()
        await worker.submit(items)
        shards = await _drain(worker, 2)
        await worker.stop(save=False)
        return shards

    shards = asyncio.run(go())
    assert sorted(t["index"] for s in shards for t in s["trees"]) == [0, 1]


def test_two_writers_never_share_a_shard_name(tmp_path):
    """A local writer and a worker whose tag collides: link() refuses, nothing is overwritten."""
    _, items = _items(2)
    writer = TreeShardWriter(tmp_path)
    from cotgen.io.writers import write_tree_shard
    from cotgen.tree import Tree

    trees = [Tree.new(q, a) for _, q, a, _ in items]
    write_tree_shard(tmp_path, trees[:1], "part-00000-w1xff.parquet")
    with pytest.raises(FileExistsError):
        write_tree_shard(tmp_path, trees[1:], "part-00000-w1xff.parquet")
    assert writer.write(trees[1:]).name == "part-00000.parquet"
    assert TreeShardWriter(tmp_path).write(trees[:1]).name == "part-00001.parquet"
    assert not list((tmp_path / "trees").glob(".*"))  # no temporary file left behind
    assert len(list(iter_trees(shard_paths(tmp_path)))) == 3


def test_work_queue_gives_a_dead_workers_problems_back_first():
    problems, _ = _items(10)
    q = WorkQueue(problems)
    assert q.take("a", 3) == [0, 1, 2]
    assert q.take("b", 3) == [3, 4, 5]
    q.save("a", [1])
    assert q.release("a") == [0, 2]
    assert list(q.waiting) == [0, 2, 6, 7, 8, 9] and q.requeued == 2
    assert q.take("c", 4) == [0, 2, 6, 7]
    q.save("b", [3, 4, 5])
    q.save("c", [0, 2, 6, 7])
    q.save("d", q.take("d", 10))
    assert q.complete and not q.waiting


def test_ray_options_are_checked():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        RayConfig(workers=0)
    with pytest.raises(ValueError, match="cpus_per_worker"):
        RayConfig(cpus_per_worker=0)
    assert RayConfig().batch_size(64) == 16 and RayConfig().batch_size(2) == 1
    assert RayConfig(batch=5).batch_size(64) == 5


def test_executor_ray_without_ray_says_how_to_install_it(tmp_path, cli, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if absent
    r = cli("synthesize", "--problems", "builtin:arith", "--limit", "1", "--out", tmp_path / "run",
            "--executor", "ray")
    assert r.code == 2, r.err
    assert "pip install 'cotgen[ray]'" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "run").exists()


def test_ray_options_need_the_ray_executor(tmp_path, cli):
    r = cli("synthesize", "--problems", "builtin:arith", "--out", tmp_path / "run", "--ray-address", "auto")
    assert r.code == 2 and "--ray-address needs --executor ray" in r.err
    r = cli("synthesize", "--problems", "builtin:arith", "--out", tmp_path / "run", "--executor", "slurm")
    assert r.code == 2 and "executor must be one of local, ray" in r.err


def test_importing_the_executor_does_not_import_ray():
    import subprocess
    import sys

    code = "import sys, cotgen.cli.synthesize, cotgen.executors.ray_cluster; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_workers_get_the_drivers_model_settings_but_no_secret():
    from cotgen.executors.ray_cluster import forwarded_env

    env = {"HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_x", "COTGEN_CACHE": "/c", "VLLM_USE_V1": "1",
           "OPENAI_API_KEY": "k", "HF_HUB_ACCESS_KEY": "k", "PATH": "/bin"}
    assert forwarded_env(env) == {"HF_HUB_OFFLINE": "1", "COTGEN_CACHE": "/c", "VLLM_USE_V1": "1"}


class FakeRay:
    """Just enough of `ray` for the driver's checks before any worker starts."""

    def __init__(self, resources):
        self.resources = resources

    def cluster_resources(self):
        return self.resources

    def remote(self, cls):
        return cls


@pytest.mark.parametrize(("address", "workers", "ok"), [(None, 3, False), (None, 2, True), ("auto", 3, True)])
def test_workers_that_cannot_all_be_placed_are_refused_before_any_starts(tmp_path, address, workers, ok):
    from cotgen.errors import UsageError
    from cotgen.executors.ray_cluster import _Driver

    opts = RayConfig(workers=workers, gpus_per_worker=1, address=address)
    driver = _Driver(FakeRay({"CPU": 16.0, "GPU": 2.0}), [], _spec(tmp_path), opts, print, None)
    if ok:  # a joined cluster may autoscale: only one worker's needs must fit now
        driver._check_resources()
    else:
        with pytest.raises(UsageError, match="3 Ray worker.* ask for 1 GPU.* the cluster has 2"):
            driver._check_resources()


def test_a_shard_that_cannot_be_written_is_reported_by_poll(tmp_path):
    """Disk full, a folder gone: the worker cannot go on, and the driver must hear of it
    (it restarts the worker, then stops the run) rather than wait for trees that never come."""
    _, items = _items(2)
    spec = _spec(tmp_path, shard_trees=1)
    (tmp_path / "trees").rmdir()
    (tmp_path / "trees").write_text("not a folder")

    async def go():
        worker = TreeWorker(spec, engine=ScriptedEngine())
        await worker.start()
        await worker.submit(items)
        with pytest.raises(RuntimeError, match="NotADirectoryError"):
            for _ in range(50):
                await worker.poll(wait_s=5.0)
        await worker.stop(save=False)

    asyncio.run(go())


def test_stop_closes_the_reward_model(tmp_path):
    """--value prm: the PRM is a second model (on vLLM, GPU memory); stopping the worker frees it."""
    closed = []

    class Prm:
        def close(self):
            closed.append(True)

    async def go():
        worker = TreeWorker(_spec(tmp_path), engine=ScriptedEngine())
        await worker.start()
        worker._valuer.prm = Prm()  # what build_valuer gives for --value prm (PRMValuer.prm)
        await worker.stop(save=False)

    asyncio.run(go())
    assert closed == [True]
