"""The worker: one engine, many trees in flight on it, finished trees into shards.

`TreeWorker` is the one implementation of a synthesize run's work. The local executor
(executors.local) drives one in this process; the Ray executor (executors.ray_cluster) wraps
it in `ray.remote`, one actor per worker. It knows nothing of Ray, and must not.

Protocol (all methods async, called by the executor):
  start()        build the engine (unless given one); returns who and where the worker is
  submit(items)  queue problems: (index, question, answer, source)
  poll(wait_s)   what happened since the last poll (finished trees, shards written with
                 the tally of each tree in them); waits up to wait_s for something to happen.
                 Raises WorkerFailed once the worker cannot go on (its engine failed, a
                 shard could not be written)
  stop(save)     cancel trees in flight; with save, write finished trees still buffered

A tree is durable once the shard holding it has its final name; only then does the executor
count it done. A worker that dies loses its trees in flight and its buffer, nothing else.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotgen.engines.config import EngineConfig
from cotgen.executors.job import EngineFailure, Item, new_tree, search_tree, tree_tally
from cotgen.io.atomic import crash_point
from cotgen.io.layout import TREE_SHARD, shard_paths, tree_shard_name
from cotgen.search.config import SearchConfig
from cotgen.tree import Tree


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs to search trees exactly as any other worker would."""

    engine: EngineConfig
    search: SearchConfig
    out: str  # the run folder, on a filesystem every worker sees
    tag: str | None  # unique to a Ray worker's lifetime, in its shard names; None: part-NNNNN.parquet
    concurrency: int = 64  # trees in flight on this worker's engine
    shard_trees: int = 64  # finished trees per shard
    prompts: str | None = None  # a folder of templates replacing the packaged ones
    hint_answer: bool = False
    flush_s: float = 60.0  # a finished tree waits at most this long for its shard


class WorkerFailed(RuntimeError):
    """The worker cannot go on; `failure` is why (an EngineFailure, or the OSError of a shard
    that could not be written)."""

    def __init__(self, message: str, failure: BaseException | None = None) -> None:
        super().__init__(message)
        self.failure = failure


class TreeWorker:
    """Searches the problems it is given, `concurrency` trees at a time, on its own engine."""

    def __init__(self, spec: WorkerConfig, engine: Any = None, close_engine: bool | None = None) -> None:
        self.spec = spec
        self._engine = engine  # a built engine (tests, the local executor); None = build spec.engine
        # Close the engine at stop: one this worker builds, or one handed over with it.
        self._close_engine = engine is None if close_engine is None else close_engine
        self._queue: deque[Item] = deque()
        self._tasks: dict[asyncio.Task, int] = {}
        self._simulations: dict[int, int] = {}  # index -> finished simulations, trees in flight
        self._buffer: list[tuple[int, Tree]] = []
        self._buffered_since = 0.0
        self._finished: list[dict[str, Any]] = []  # since the last poll
        self._shards: list[dict[str, Any]] = []  # since the last poll
        self._failure: BaseException | None = None
        self._next_shard = 0
        self._wake: asyncio.Event | None = None
        self._news: asyncio.Event | None = None
        self._pump_task: asyncio.Task | None = None
        self._write_task: asyncio.Task | None = None
        self._policy = self._valuer = None
        self._cache_before = (0, 0)

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
        self._valuer = build_valuer(self._engine, prompts, spec.search, spec.engine)  # --value prm loads the PRM here
        self._next_shard = self._first_free_shard()
        self._cache_before = self._prompt_cache()
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
        if not (self._finished or self._shards or self._failure):
            try:
                await asyncio.wait_for(self._news.wait(), timeout=wait_s)
            except asyncio.TimeoutError:
                pass
        self._news.clear()
        if self._failure is not None:
            # The pump died: nothing more will be finished here.
            raise WorkerFailed(self._failure_message(), self._failure)
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
        try:
            if save and self._buffer:
                await self._write_buffer()
        finally:
            prm = getattr(self._valuer, "prm", None)  # --value prm: its own model (vLLM: GPU memory)
            if prm is not None:
                prm.close()
            if self._engine is not None and self._close_engine:
                await self._engine.close()
        return self._events()

    def _events(self) -> dict[str, Any]:
        finished, self._finished = self._finished, []
        shards, self._shards = self._shards, []
        events = {
            "finished": finished,
            "shards": shards,
            "in_flight": len(self._tasks),
            "queued": len(self._queue),
            "buffered": len(self._buffer),
            "simulations_in_flight": sum(self._simulations.values()),
            "generated_tokens": self._generated_tokens(),
            "prompt_tokens": None,
            "cached_prompt_tokens": None,
        }
        if getattr(getattr(self._engine, "stats", None), "prefix_cache", False):
            now = self._prompt_cache()
            events["prompt_tokens"] = now[0] - self._cache_before[0]
            events["cached_prompt_tokens"] = now[1] - self._cache_before[1]
        return events

    def _generated_tokens(self) -> int:
        if self._policy is None or self._valuer is None:
            return 0
        return self._policy.generated_tokens + self._valuer.generated_tokens

    def _prompt_cache(self) -> tuple[int, int]:
        """(prompt tokens sent, of them served from the prefix cache) so far."""
        stats = getattr(self._engine, "stats", None)
        return getattr(stats, "prompt_tokens", 0), getattr(stats, "cached_prompt_tokens", 0)

    def _failure_message(self) -> str:
        failure = self._failure
        if isinstance(failure, EngineFailure):
            return failure.reason
        return f"{type(failure).__name__}: {failure}"

    def _first_free_shard(self) -> int:
        """The first shard number above those with this worker's tag: a resumed local run
        goes on after its earlier shards, a Ray worker's new tag starts at 0."""
        taken = (TREE_SHARD.match(p.name) for p in shard_paths(Path(self.spec.out)))
        return 1 + max((int(m["index"]) for m in taken if m and m["tag"] == self.spec.tag), default=-1)

    async def _pump(self) -> None:
        """Keep `concurrency` trees in flight; write a shard when enough trees are finished,
        when the worker runs out of work, or when the oldest finished tree has waited flush_s."""
        assert self._wake is not None and self._news is not None
        try:
            while True:
                while self._queue and len(self._tasks) < self.spec.concurrency:
                    self._start(self._queue.popleft())
                if self._tasks:
                    timeout = None
                    if self._buffer:
                        timeout = max(0.0, self._buffered_since + self.spec.flush_s - time.monotonic())
                    wake = asyncio.ensure_future(self._wake.wait())
                    done, _ = await asyncio.wait({*self._tasks, wake}, timeout=timeout,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    wake.cancel()
                    self._wake.clear()
                    self._take_finished(done - {wake})
                else:
                    if not self._queue:  # idle until more problems come
                        await self._wake.wait()
                        self._wake.clear()
                    continue
                if not self._tasks and not self._queue:
                    crash_point("final-flush")  # every tree given is searched; its last shards are next
                    await self._write_buffer()
                elif self._buffer and time.monotonic() - self._buffered_since >= self.spec.flush_s:
                    await self._write_buffer()  # the oldest tree waited long enough: all of them
                elif len(self._buffer) >= self.spec.shard_trees:
                    await self._write_buffer(full_only=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the engine failed, or a shard cannot be written: the executor must hear of it
            self._failure = exc
            self._news.set()

    def _take_finished(self, done: set[asyncio.Task]) -> None:
        """Buffer the trees that finished; an error out of a tree's search (the engine
        failed: search_tree keeps a tree's own failures on the tree) stops the worker, and
        the trees in flight are then not recorded."""
        failed = None
        for task in done:
            index = self._tasks.pop(task)
            self._simulations.pop(index, None)
            error = None if task.cancelled() else task.exception()
            if error is None:
                self._finish(index, task.result())
            elif failed is None:
                failed = error
        if failed is not None:
            raise EngineFailure.of(failed, in_flight=len(self._tasks) + 1) from failed

    def _start(self, item: Item) -> None:
        index, question, answer, source = item
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
        crash_point("tree-finished")
        self._finished.append(tree_tally(index, tree))
        assert self._news is not None
        self._news.set()

    async def _write_buffer(self, full_only: bool = False) -> None:
        """Write the buffered trees as shards of at most shard_trees (with `full_only`, only
        full ones: the rest wait for more trees)."""
        size = self.spec.shard_trees
        while self._buffer and (not full_only or len(self._buffer) >= size):
            batch, self._buffer = self._buffer[:size], self._buffer[size:]
            # Shielded: cancelling the pump (stop) must not drop a shard being written; stop()
            # waits for it, so its trees are reported, not orphaned.
            self._write_task = asyncio.ensure_future(self._write(batch))
            await asyncio.shield(self._write_task)

    async def _write(self, batch: list[tuple[int, Tree]]) -> None:
        from cotgen.io.writers import write_tree_shard

        trees = [t for _, t in batch]
        while True:
            name = tree_shard_name(self._next_shard, self.spec.tag)
            self._next_shard += 1
            try:
                # Off the event loop: the engine's requests keep flowing while Parquet is written.
                info = await asyncio.to_thread(write_tree_shard, Path(self.spec.out), trees, name)
                break
            except FileExistsError:  # a name another writer took; never overwrite a shard
                continue
        self._shards.append({"name": info.name, "rows": info.rows, "failed": info.failed,
                             "trees": [tree_tally(i, t) for i, t in batch]})
        assert self._news is not None
        self._news.set()
