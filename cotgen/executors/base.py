"""What every executor takes and gives back.

An executor searches a tree for each problem of a list with TreeWorkers (executors.worker):
`LocalExecutor` drives one in this process, `RayExecutor` N on Ray actors. Both have

    run(problems, spec, record_shard, progress, stop) -> RunResult

Workers write the shards; the executor hands each one to `record_shard(ShardInfo)` in the
calling process, which keeps the manifest (its one writer). A tree counts as done once its
shard is recorded. Ctrl-C, SIGTERM, or `stop.ask(reason)` stop the workers; they write their
finished trees first, then KeyboardInterrupt propagates (or, for `ask`, run returns with
`RunResult.stopped` set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cotgen.executors.job import RunTotals


@dataclass(frozen=True)
class RunProgress:
    """What a run has done so far, handed to the progress callback after every finished tree
    and about twice a second."""

    total: int  # trees this run searches (problems not yet in the folder)
    done: int  # trees finished
    simulations: int  # finished simulations, counting those of trees still in flight
    generated_tokens: int
    seconds: float
    correct_leaves: int  # over graded terminal leaves of finished trees
    terminal_leaves: int
    # --executor ray only (workers == 0 for a local run):
    workers: int = 0  # worker places
    workers_up: int = 0  # workers started and searching now
    saved: int = 0  # trees in shards (done counts trees a worker still buffers)
    requeued: int = 0  # problems handed back to the queue by dead workers
    worker_deaths: int = 0


ProgressCallback = Callable[[RunProgress], None]
ShardRecorder = Callable[[Any], None]  # takes an io.writers.ShardInfo


@dataclass
class RunResult:
    """What an executor did: the tally of every tree it saved, and the shards holding them."""

    saved: dict[int, dict[str, Any]] = field(default_factory=dict)  # problem index -> tree tally
    shards: list[str] = field(default_factory=list)
    generated_tokens: int = 0
    seconds: float = 0.0  # the search, from the engine ready (local) or from the start (Ray)
    model: str = ""  # the engine's model id, as the workers report it
    # Engines with a prefix cache: prompt tokens sent and of them served by the cache (local only).
    prompt_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    stopped: str | None = None  # why the run stopped early when StopRequest.ask stopped it
    api: dict[str, Any] | None = None  # --engine chat: the API's usage and cost (ChatEngine.api_usage)
    # Ray only:
    workers: list[dict[str, Any]] = field(default_factory=list)  # start() of each worker
    worker_deaths: int = 0
    requeued: int = 0
    search_seconds: float = 0.0  # from the first worker ready to the last shard: no start-up
    # Trees finished per second once every worker was up (the first start of each): how fast
    # the cluster searches, without the workers' start-up skew. 0 when it never was.
    steady_trees_per_s: float = 0.0

    @property
    def totals(self) -> RunTotals:
        return RunTotals.of(self.saved.values())
