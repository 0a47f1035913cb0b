"""`--executor local` (the default): one TreeWorker on one engine, in this process.

The same worker a Ray actor runs, driven the way the Ray driver drives it: problems
submitted, shards recorded as the worker reports them, the worker stopped with its finished
trees saved however the run ends.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from cotgen.executors.base import ProgressCallback, RunProgress, RunResult, ShardRecorder
from cotgen.executors.job import EngineFailure, RunTotals
from cotgen.executors.worker import TreeWorker, WorkerConfig, WorkerFailed
from cotgen.io.atomic import crash_point
from cotgen.problems import Problem
from cotgen.stopping import StopRequest, held_signals, run_async

POLL_S = 0.5  # the progress display hears of the run at least this often


class LocalExecutor:
    def __init__(self, engine: Any = None) -> None:
        self.engine = engine  # a built engine (tests, benchmarks); None = build spec.engine

    def run(self, problems: list[Problem], spec: WorkerConfig, record_shard: ShardRecorder,
            progress: ProgressCallback | None, stop: StopRequest) -> RunResult:
        """Search a tree for each of `problems` (see executors.base). A failed engine raises
        EngineFailure, a shard that cannot be written its OSError; Ctrl-C and SIGTERM raise
        KeyboardInterrupt once the finished trees are saved."""
        engine, built = self.engine, False
        if engine is None:
            from cotgen.engines import build_engine

            # Built here, outside the event loop: Ctrl-C or SIGTERM during a long model load
            # stops it at once.
            engine, built = build_engine(spec.engine), True
            from cotgen.engines.chat import refuse_value_without_logprobs

            refuse_value_without_logprobs(engine, spec.search.value_mode, sum(p.answer is None for p in problems))
        crash_point("engine-built")
        worker = TreeWorker(spec, engine=engine, close_engine=built)
        try:
            result = run_async(_Driver(worker, problems, record_shard, progress).run(stop), stop)
        except (EngineFailure, KeyboardInterrupt) as exc:
            if hasattr(engine, "api_usage"):  # what a stopped run spent (--max-cost, Ctrl-C)
                exc.api = engine.api_usage()
            raise
        if hasattr(engine, "api_usage"):  # --engine chat
            result.api = engine.api_usage()
        return result


class _Driver:
    """One worker's events, as the run counts them."""

    def __init__(self, worker: TreeWorker, problems: list[Problem], record_shard: ShardRecorder,
                 progress: ProgressCallback | None) -> None:
        self.worker, self.problems = worker, problems
        self.record_shard, self.progress = record_shard, progress
        self.result = RunResult()
        self.finished: dict[int, dict[str, Any]] = {}  # done, not yet in a shard
        self.saved = RunTotals()  # of result.saved, kept as trees are saved: a report costs no pass over them
        self.simulations_in_flight = 0
        self.stopped = False
        self.t0 = time.perf_counter()

    async def run(self, stop: StopRequest) -> RunResult:
        worker, result = self.worker, self.result
        try:
            info = await worker.start()
            result.model = info["model"]
            result.workers.append(info)
            await worker.submit([(i, p.question, p.answer, p.source) for i, p in enumerate(self.problems)])
            self.report()
            while len(result.saved) < len(self.problems) and stop.reason is None:
                try:
                    self.absorb(await worker.poll(POLL_S))
                except WorkerFailed as exc:
                    # The engine failed (EngineFailure) or a shard cannot be written (OSError):
                    # save what is finished, unless writing is what failed.
                    await self.stop(save=not isinstance(exc.failure, OSError), deliver=False)
                    raise (exc.failure or exc) from None
                self.report()
            result.stopped = stop.reason
            # A signal that comes while the last shards are written stops the run once they
            # are: exit 130 or 143, as at any other moment.
            await self.stop(save=True, deliver=True)
        except (asyncio.CancelledError, KeyboardInterrupt):
            # Ctrl-C or SIGTERM: the trees finished so far go into shards before the run stops.
            await self.stop(save=True, deliver=False)
            raise
        except BaseException:
            # Anything else (the manifest cannot be written, a bug): the worker stops, its
            # engine closes, and the error goes on as it is.
            await self.stop(save=False, deliver=False)
            raise
        result.seconds = time.perf_counter() - self.t0
        self.report()
        return result

    async def stop(self, save: bool, deliver: bool) -> None:
        """Stop the worker, once. No signal cuts its last shards short: one that comes
        meanwhile is delivered after (`deliver`), or dropped when the run is stopping anyway."""
        if self.stopped:
            return
        self.stopped = True
        with held_signals(deliver=deliver):
            self.absorb(await self.worker.stop(save=save))

    def absorb(self, events: dict[str, Any]) -> None:
        from cotgen.io.writers import ShardInfo

        result = self.result
        for tally in events["finished"]:
            self.finished[tally["index"]] = tally
        for shard in events["shards"]:
            self.record_shard(ShardInfo(shard["name"], shard["rows"], shard["failed"]))
            result.shards.append(shard["name"])
            for tally in shard["trees"]:
                self.finished.pop(tally["index"], None)
                if tally["index"] not in result.saved:
                    self.saved.add(tally)
                result.saved[tally["index"]] = tally
        self.simulations_in_flight = events["simulations_in_flight"]
        result.generated_tokens = events["generated_tokens"]
        result.prompt_tokens = events["prompt_tokens"]
        result.cached_prompt_tokens = events["cached_prompt_tokens"]

    def report(self) -> None:
        if self.progress is None:
            return
        totals = replace(self.saved)
        for tally in self.finished.values():
            totals.add(tally)
        self.progress(RunProgress(
            total=len(self.problems), done=totals.trees, simulations=totals.simulations + self.simulations_in_flight,
            generated_tokens=self.result.generated_tokens, seconds=time.perf_counter() - self.t0,
            correct_leaves=totals.correct_leaves, terminal_leaves=totals.terminal_leaves,
        ))
