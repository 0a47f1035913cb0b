"""One Ray worker's job: an engine, many trees in flight on it, finished trees into shards.

`TreeWorker` is a plain class: the Ray executor wraps it in `ray.remote` (one actor per
worker), and tests drive it in-process on a scripted engine. It knows nothing of Ray.

Protocol (all methods async, called by the driver):
  start()        build the engine; returns who and where the worker is
  submit(items)  queue problems: (index, question, answer, source)
  poll(wait_s)   what happened since the last poll (finished trees, shards written with
                 a summary of each tree in them);
                 waits up to wait_s for something to happen
  stop(save)     cancel trees in flight; with save, write finished trees still buffered

A tree is durable once the shard holding it has its final name; only then does the driver
count it done. A worker that dies loses its trees in flight and its buffer, nothing else.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotgen.engines.config import EngineConfig
from cotgen.search.config import SearchConfig
from cotgen.tree import Tree

Item = tuple[int, str, "str | None", str]  # (index in the driver's list, question, answer, source)


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs to search trees exactly as a local run would."""

    engine: EngineConfig
    search: SearchConfig
    out: str  # the run folder, on a filesystem every worker sees
    tag: str  # unique to this worker's lifetime: goes into its shard names
    concurrency: int = 64  # trees in flight on this worker's engine
    shard_trees: int = 64  # finished trees per shard
    prompts: str | None = None  # a folder of templates replacing the packaged ones
    hint_answer: bool = False
    flush_s: float = 60.0  # a finished tree waits at most this long for its shard


class TreeWorker:
    """Searches the problems it is given, `concurrency` trees at a time, on its own engine."""

    def __init__(self, spec: WorkerConfig, engine: Any = None) -> None:
        self.spec = spec
        self._engine = engine  # tests pass a scripted engine; None = build spec.engine
        self._queue: list[Item] = []
        self._tasks: dict[asyncio.Task, int] = {}
        self._simulations: dict[int, int] = {}  # index -> finished simulations, trees in flight
        self._buffer: list[tuple[int, Tree]] = []
        self._buffered_since = 0.0
        self._finished: list[dict[str, Any]] = []  # since the last poll
        self._shards: list[dict[str, Any]] = []  # since the last poll
        self._error: str | None = None
        self._next_shard = 0
        self._wake: asyncio.Event | None = None
        self._news: asyncio.Event | None = None
        self._pump_task: asyncio.Task | None = None
        self._write_task: asyncio.Task | None = None
        self._policy = self._valuer = None

    async def start(self) -> dict[str, Any]:
        """Build the engine and start searching; a CotgenError here is the engine's message."""
        from cotgen.policy import EnginePolicy, load_prompts
        from cotgen.reward_model import build_valuer

        spec = self.spec
        prompts = load_prompts(Path(spec.prompts) if spec.prompts else None)
        if self._engine is None:
            from cotgen.engines import build_engine

            self._engine = build_engine(spec.engine)
        self._policy = EnginePolicy(self._engine, prompts, spec.search, hint_answer=spec.hint_answer)
        self._valuer = build_valuer(self._engine, prompts, spec.search, spec.engine)
        self._wake, self._news = asyncio.Event(), asyncio.Event()
        self._pump_task = asyncio.ensure_future(self._pump())
        return {"pid": os.getpid(), "host": socket.gethostname(), "model": self._engine.model_id, "tag": spec.tag}

    async def submit(self, items: list[Item]) -> None:
        self._queue.extend(items)
        assert self._wake is not None, "start() first"
        self._wake.set()

    async def poll(self, wait_s: float = 1.0) -> dict[str, Any]:
        """Events since the last poll; returns early as soon as there is one."""
        assert self._news is not None, "start() first"
        if not (self._finished or self._shards or self._error):
            try:
                await asyncio.wait_for(self._news.wait(), timeout=wait_s)
            except asyncio.TimeoutError:
                pass
        self._news.clear()
        if self._error is not None:
            # The pump died (a shard could not be written): nothing more will be finished here.
            raise RuntimeError(self._error)
        return self._events()

    async def stop(self, save: bool = True) -> dict[str, Any]:
        """Cancel the trees in flight; with `save`, write the buffered finished trees first."""
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)
            self._pump_task = None
        if self._write_task is not None:  # a shard half-written when the pump was cancelled
            await asyncio.gather(self._write_task, return_exceptions=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._simulations.clear()
        if save and self._buffer:
            await self._write_buffer()
        if self._engine is not None:
            await self._engine.close()
        return self._events()

    def _events(self) -> dict[str, Any]:
        finished, self._finished = self._finished, []
        shards, self._shards = self._shards, []
        return {
            "finished": finished,
            "shards": shards,
            "in_flight": len(self._tasks),
            "queued": len(self._queue),
            "buffered": len(self._buffer),
            "simulations_in_flight": sum(self._simulations.values()),
            "generated_tokens": self._generated_tokens(),
        }

    def _generated_tokens(self) -> int:
        if self._policy is None or self._valuer is None:
            return 0
        return self._policy.generated_tokens + self._valuer.generated_tokens

    async def _pump(self) -> None:
        """Keep `concurrency` trees in flight; write a shard when enough trees are finished,
        when the worker runs out of work, or when the oldest finished tree has waited flush_s."""
        assert self._wake is not None and self._news is not None
        try:
            while True:
                while self._queue and len(self._tasks) < self.spec.concurrency:
                    self._start(self._queue.pop(0))
                if self._tasks:
                    timeout = None
                    if self._buffer:
                        timeout = max(0.0, self._buffered_since + self.spec.flush_s - time.monotonic())
                    wake = asyncio.ensure_future(self._wake.wait())
                    done, _ = await asyncio.wait({*self._tasks, wake}, timeout=timeout,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    wake.cancel()
                    self._wake.clear()
                    for task in done - {wake}:
                        index = self._tasks.pop(task)
                        self._simulations.pop(index, None)
                        self._finish(index, task.result())
                else:
                    if not self._queue:
                        if self._buffer:
                            await self._write_buffer()  # idle: nothing left to wait for
                        await self._wake.wait()
                        self._wake.clear()
                    continue
                full = len(self._buffer) >= self.spec.shard_trees
                stale = self._buffer and time.monotonic() - self._buffered_since >= self.spec.flush_s
                if full or stale:
                    await self._write_buffer()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a shard that cannot be written: the driver must hear of it
            self._error = f"{type(exc).__name__}: {exc}"
            self._news.set()

    def _start(self, item: Item) -> None:
        from cotgen.synthesize import new_tree, search_tree

        index, question, answer, source = item
        # new_tree gives the tree the rng a local run would: same seed, same tree.
        tree, rng = new_tree(question, answer, source, self._engine.model_id, self.spec.search)
        self._simulations[index] = 0

        def on_simulation(finished: int) -> None:
            self._simulations[index] = finished

        task = asyncio.ensure_future(
            search_tree(tree, self._policy, self._valuer, self.spec.search, rng, on_simulation)
        )
        self._tasks[task] = index

    def _finish(self, index: int, tree: Tree) -> None:
        if not self._buffer:
            self._buffered_since = time.monotonic()
        self._buffer.append((index, tree))
        self._finished.append(tree_summary(index, tree))
        assert self._news is not None
        self._news.set()

    async def _write_buffer(self) -> None:
        batch, self._buffer = self._buffer, []
        # Shielded: cancelling the pump (stop) must not drop a shard being written; stop()
        # waits for it, so its trees are reported, not orphaned.
        self._write_task = asyncio.ensure_future(self._write(batch))
        await asyncio.shield(self._write_task)

    async def _write(self, batch: list[tuple[int, Tree]]) -> None:
        from cotgen.io.inputs import tree_shard_name
        from cotgen.io.writers import write_tree_shard

        trees = [t for _, t in batch]
        while True:
            name = tree_shard_name(self._next_shard, self.spec.tag)
            self._next_shard += 1
            try:
                # Off the event loop: the engine's requests keep flowing while Parquet is written.
                info = await asyncio.to_thread(write_tree_shard, Path(self.spec.out), trees, name)
                break
            except FileExistsError:  # only if a tag were reused; never overwrite a shard
                continue
        self._shards.append({"name": info.name, "rows": info.rows, "failed": info.failed,
                             "trees": [tree_summary(i, t) for i, t in batch]})
        assert self._news is not None
        self._news.set()


def tree_summary(index: int, tree: Tree) -> dict[str, Any]:
    """What the driver needs of a finished tree for its counts, without the tree itself."""
    terminals = [n for n in tree.nodes if n.terminal and n.correct is not None]
    return {
        "index": index,
        "id": tree.id,
        "simulations": tree.stats.simulations,
        "terminal_leaves": len(terminals),
        "correct_leaves": sum(1 for n in terminals if n.correct),
        "error": tree.error,
    }
