"""The synthesize run: problems in, many searched trees in flight on one engine, shards out."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotgen.engines.config import EngineConfig
from cotgen.engines.base import Engine
from cotgen.errors import (
    CotgenError,
    EngineFailed,
    Interrupted,
    RunError,
    UsageError,
    environment_error,
    first_line,
)
from cotgen.executors.ray_cluster import RayConfig
from cotgen.io.runfolder import (
    COMPLETE,
    INTERRUPTED,
    RUNNING,
    Reconciled,
    RunLock,
    crash_point,
    reconcile,
)
from cotgen.io.writers import TreeShardWriter, read_manifest
from cotgen.policy import EnginePolicy, load_prompts
from cotgen.reward_model import build_valuer
from cotgen.search.config import SearchConfig
from cotgen.search.mcts import run_search
from cotgen.search.ratings import assign_ratings
from cotgen.stopping import StopRequest, held_signals, run_async, terminate_as_interrupt
from cotgen.tree import Tree, tree_id

# Settings a resumed run must share with the run that started the folder: they shape trees.
# Of the search settings, SearchConfig.shaping says which.
SHAPING = ("search", "model", "prompts", "hint_answer")


@dataclass(frozen=True)
class RunConfig:
    """Everything about a synthesize run that is not a search or engine setting."""

    problems: str  # what --problems takes: a file, a dataset id, builtin:arith
    out: Path  # the run folder: trees/part-*.parquet + manifest.json
    split: str | None = None  # dataset split, for dataset ids and folders; None = train (or the only one)
    question_field: str | None = None  # None = guess from common names
    answer_field: str | None = None  # None = guess from common names
    limit: int | None = None  # most problems to take (after --skip); None = all
    skip: int = 0  # problems to pass over first
    problem_seed: int = 0  # seeds builtin generators
    concurrency: int = 64  # trees in flight at once, all on one engine
    shard_trees: int = 64  # finished trees per shard; smaller loses less on a crash
    prompts: Path | None = None  # a folder of templates replacing the packaged prompts/
    hint_answer: bool = False  # show the gold answer to the policy (LLaMA-O1's hint)
    # Longer questions are refused at start, by size, before anything tokenizes them: a 50 MB
    # question otherwise grows the process by gigabytes. MATH's longest is ~4,000 characters.
    max_problem_chars: int = 100_000
    keep_failed: bool = False  # a resumed run keeps trees whose generation failed (default: retries them)
    decontaminate: tuple[str, ...] = ()  # benchmarks whose questions are dropped before the search

    def __post_init__(self) -> None:
        if self.max_problem_chars < 1:
            raise ValueError(f"max_problem_chars must be >= 1, not {self.max_problem_chars}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, not {self.concurrency}")
        if self.shard_trees < 1:
            raise ValueError(f"shard_trees must be >= 1, not {self.shard_trees}")


@dataclass
class _Live:
    """What the run has done so far; outlives the event loop so Ctrl-C can still save it."""

    buffer: list[Tree] = field(default_factory=list)  # finished, not yet in a shard
    written: int = 0
    failed: int = 0
    simulations: int = 0
    correct_leaves: int = 0
    terminal_leaves: int = 0
    solved: int = 0  # trees with at least one correct leaf
    running_simulations: dict[str, int] = field(default_factory=dict)  # tree id -> finished, in flight
    shards: list[str] = field(default_factory=list)
    first_error: str | None = None


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


@dataclass
class SynthesizeReport:
    """What a synthesize run did; `as_json()` is what --json prints and the manifest keeps."""

    out: str
    problems: int  # problems the source gave (after --skip / --limit)
    dropped_rows: int  # rows of the source that made no problem
    already_done: int  # problems whose tree was in the folder already
    too_long: int = 0  # problems longer than max_problem_chars: not searched
    no_answer: int = 0  # problems to search that have no answer: their leaves cannot be graded
    retried_failed: int = 0  # failed trees taken out of the shards to be searched again
    ran: bool = False  # False when there was nothing to do: the figures below stay unset
    trees: int = 0
    failed: int = 0
    simulations: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    simulations_per_s: float = 0.0
    correct_leaves: int = 0
    terminal_leaves: int = 0
    solved_trees: int = 0  # trees with at least one correct leaf
    shards: list[str] = field(default_factory=list)
    model: str = ""
    executor: str = "local"  # local | ray
    # --executor ray only:
    workers: int = 0
    worker_deaths: int = 0  # workers that died and were replaced
    requeued: int = 0  # problems a dead worker handed back, searched again elsewhere
    search_seconds: float = 0.0  # from the first worker ready to the end: no start-up
    steady_trees_per_s: float = 0.0  # trees/s once every worker was up
    # Engines with a prefix cache (vllm; openai on a server that reports it): this run's
    # prompt tokens and those the cache served. None where the engine does not measure it.
    prompt_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    prefix_cache_hit_rate: float | None = None

    def as_json(self) -> dict[str, Any]:
        keys = ["out", "problems", "dropped_rows", "already_done", "too_long", "no_answer", "retried_failed",
                "trees", "failed"]
        if self.ran:
            keys += ["simulations", "generated_tokens", "seconds", "tokens_per_s", "simulations_per_s",
                     "correct_leaves", "terminal_leaves", "solved_trees", "shards", "model", "executor"]
            if self.prompt_tokens is not None:
                keys += ["prompt_tokens", "cached_prompt_tokens", "prefix_cache_hit_rate"]
            if self.executor == "ray":
                keys += ["workers", "worker_deaths", "requeued", "search_seconds", "steady_trees_per_s"]
        return {k: getattr(self, k) for k in keys}


class AllTreesFailed(RunError):
    """Every tree of the run failed; `report` says what the run did all the same."""

    def __init__(self, message: str, report: SynthesizeReport) -> None:
        super().__init__(message)
        self.report = report


def _grade(text: str, gold: str) -> bool | None:
    from cotgen.verify import grade

    return grade(text, gold).correct


def _settings(search: SearchConfig, engine_cfg: EngineConfig, prompts_digest: str, opts: RunConfig) -> dict[str, Any]:
    return {
        "search": search.to_dict(),
        "model": engine_cfg.model,
        "prompts": prompts_digest,
        "hint_answer": opts.hint_answer,
        "engine": engine_cfg.to_dict(),
    }


def shaping_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's settings that shapes its trees: the one rule resume checks."""
    out = {key: settings.get(key) for key in SHAPING}
    if isinstance(out["search"], dict):
        out["search"] = SearchConfig.shaping(out["search"])
    return out


def _refuse_changed_settings(out: Path, new: dict[str, Any]) -> None:
    old = read_manifest(out).get("settings")
    if not old:
        return
    a_all, b_all = shaping_settings(old), shaping_settings(new)
    earlier = ("critic_rate", "conclude_rate")  # settings only the one-level-per-simulation search had
    if isinstance(a_all.get("search"), dict) and any(k in a_all["search"] for k in earlier):
        raise UsageError(
            f"{out} holds trees of cotgen's earlier search (one level per simulation); the search "
            "now rolls out to an answer every simulation, and one folder cannot mix the two: use "
            "another --out (the old trees stay readable by export, validate, view and the rest)"
        )
    changed = []
    for key in SHAPING:
        a, b = a_all[key], b_all[key]
        if key == "search" and isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    changed.append(f"{name}: {a.get(name)!r} -> {b.get(name)!r}")
        elif a != b:
            changed.append(f"{key}: {a!r} -> {b!r}")
    if changed:
        raise UsageError(
            f"{out} holds trees made with other settings ({'; '.join(changed)}); "
            "use another --out, or the same settings to resume"
        )


WarnCallback = Callable[[str], None]


def run(
    opts: RunConfig,
    search: SearchConfig,
    engine_cfg: EngineConfig,
    *,
    engine: Engine | None = None,
    progress: ProgressCallback | None = None,
    warn: WarnCallback | None = None,
    ray: RayConfig | None = None,
) -> SynthesizeReport:
    """Search a tree for every problem not yet in `opts.out`; returns what the run did.

    `engine` replaces the one `engine_cfg` describes (tests, benchmarks); `progress` is called
    with a RunProgress as trees finish; `warn` with what a user should know at start (problems
    too long to search, problems without an answer, what a resume repaired). With `ray`, Ray
    workers search the trees, each on its own engine, and this process keeps the manifest
    (cotgen.executors).

    The run holds the folder's lock throughout (cotgen.io.runfolder: one writer per run
    folder). Ctrl-C and SIGTERM save the finished trees and raise Interrupted; a tree whose
    own request fails (a CotgenError from the engine) is saved with its error and searched
    again by the next run; a failed engine (EngineFailed, or any other error) stops the run,
    saves the finished trees, records none of those in flight and raises EngineFailed.
    When every tree failed, AllTreesFailed carries the report.
    """
    prompts = load_prompts(opts.prompts)  # broken templates fail here, before any model loads
    settings = _settings(search, engine_cfg, prompts.digest(), opts)
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    with terminate_as_interrupt() as stop:
        lock = RunLock(out)
        try:
            lock.acquire()  # creates the folder: an unwritable --out fails here, before the model loads
            crash_point("lock-taken")
            return _run_locked(opts, search, engine_cfg, settings, prompts, out, engine, progress, warn, stop, ray)
        except KeyboardInterrupt:
            # Stopped before the search started (loading problems or the model): nothing to save.
            raise Interrupted(f"interrupted ({stop.name}) before any tree was searched", exit_code=stop.exit_code) from None
        finally:
            lock.release()


def _run_locked(opts: RunConfig, search: SearchConfig, engine_cfg: EngineConfig, settings: dict[str, Any],
                prompts, out: Path, engine: Engine | None, progress: ProgressCallback | None,
                warn: WarnCallback | None, stop: StopRequest, ray: RayConfig | None = None) -> SynthesizeReport:
    from cotgen.problems import load_problems

    _refuse_changed_settings(out, settings)
    problem_set = load_problems(
        opts.problems, split=opts.split, question_field=opts.question_field, answer_field=opts.answer_field,
        limit=opts.limit, skip=opts.skip, seed=opts.problem_seed,
    )
    problem_set, notes = _screen_problems(problem_set, opts, warn)
    too_long = [p for p in problem_set.problems if len(p.question) > opts.max_problem_chars]
    problems = [p for p in problem_set.problems if len(p.question) <= opts.max_problem_chars]
    rec = reconcile(out, keep_failed=opts.keep_failed)
    writer = TreeShardWriter(out, settings)
    writer.reconciled(rec.shards, damaged=rec.damaged, status=RUNNING, problems_source=problem_set.source, **notes)
    todo = [p for p in problems if tree_id(p.question, p.answer) not in rec.done_ids]
    report = SynthesizeReport(
        out=str(out),
        problems=len(problem_set.problems),
        dropped_rows=len(problem_set.skipped),
        already_done=len(problems) - len(todo),
        too_long=len(too_long),
        no_answer=sum(p.answer is None for p in todo),
        retried_failed=rec.retried_failed,
    )
    if warn is not None:
        _say_what_is_odd(warn, too_long, report, len(todo), rec, opts)
    if not todo:
        writer.update_manifest(status=COMPLETE)
        crash_point("run-complete")
        return report
    if ray is not None:
        return _run_ray(todo, opts, search, engine_cfg, settings, problem_set.source, ray, report, progress, stop)

    own_engine = engine is None
    if engine is None:
        from cotgen.engines import build_engine

        try:
            engine = build_engine(engine_cfg)
        except BaseException:
            _mark_interrupted(writer)  # the folder's problems are not all searched: say so
            raise
    crash_point("engine-built")
    policy = EnginePolicy(engine, prompts, search, hint_answer=opts.hint_answer)
    valuer = build_valuer(engine, prompts, search, engine_cfg)  # --value prm loads the PRM here
    live = _Live()
    cache_before = _prompt_cache(engine)
    t0 = time.perf_counter()

    def snapshot() -> RunProgress:
        return RunProgress(
            total=len(todo),
            done=live.written + len(live.buffer),
            simulations=live.simulations + sum(live.running_simulations.values()),
            generated_tokens=policy.generated_tokens + valuer.generated_tokens,
            seconds=time.perf_counter() - t0,
            correct_leaves=live.correct_leaves,
            terminal_leaves=live.terminal_leaves,
        )

    report_progress = (lambda: progress(snapshot())) if progress is not None else None
    try:
        run_async(_run_all(todo, engine, policy, valuer, search, opts, writer, live, report_progress, own_engine), stop)
    except (KeyboardInterrupt, asyncio.CancelledError):
        with held_signals(deliver=False):  # a second Ctrl-C must not cut the last save short
            _flush(writer, live, everything=True)
            writer.drop_retried_failures()
            writer.update_manifest(status=INTERRUPTED)
        raise Interrupted(
            f"interrupted ({stop.name}): {live.written} finished tree(s) are saved in {out}; "
            "run the same command again to finish the rest",
            exit_code=stop.exit_code,
        ) from None
    except OSError as exc:
        known = environment_error(exc, "write the run", where=out)
        if known is None:
            raise
        _mark_interrupted(writer)
        raise RunError(f"{known}; {live.written} finished tree(s) are saved in {out}: "
                       "run the same command again once it can write") from None
    except EngineFailure as exc:
        # Every tree in flight failed because the engine did, not because of its problem:
        # none is recorded, so the same command searches them again.
        with held_signals(deliver=False):
            _flush(writer, live, everything=True)
            writer.drop_retried_failures()
            writer.update_manifest(status=INTERRUPTED)
        raise EngineFailed(
            f"{exc.reason}. The run stopped: {live.written} finished tree(s) are saved in {out}, "
            f"the {exc.in_flight} in flight are not; run the same command again to finish"
        ) from None
    seconds = time.perf_counter() - t0
    tokens = policy.generated_tokens + valuer.generated_tokens
    report.ran = True
    report.trees = live.written
    report.failed = live.failed
    report.simulations = live.simulations
    report.generated_tokens = tokens
    report.seconds = round(seconds, 3)
    report.tokens_per_s = round(tokens / seconds, 1) if seconds else 0.0
    report.simulations_per_s = round(live.simulations / seconds, 2) if seconds else 0.0
    report.correct_leaves = live.correct_leaves
    report.terminal_leaves = live.terminal_leaves
    report.solved_trees = live.solved
    report.shards = live.shards
    report.model = engine.model_id
    if getattr(getattr(engine, "stats", None), "prefix_cache", False):
        prompt, cached = (now - then for now, then in zip(_prompt_cache(engine), cache_before, strict=True))
        report.prompt_tokens, report.cached_prompt_tokens = prompt, cached
        report.prefix_cache_hit_rate = round(cached / prompt, 4) if prompt else None
    writer.drop_retried_failures()
    writer.update_manifest(last_run=report.as_json(), status=COMPLETE)
    crash_point("run-complete")
    if live.written and live.failed == live.written:
        raise AllTreesFailed(f"every tree failed ({live.failed}); the first error: {live.first_error}", report)
    return report


def _screen_problems(problem_set, opts: RunConfig, warn: WarnCallback | None):
    """Before any compute: warn when the problems are a benchmark's evaluation split, and drop
    those that overlap a --decontaminate benchmark. Returns the problems and what the
    manifest records of both (cotgen.problems, cotgen.decontaminate)."""
    from dataclasses import replace

    notes: dict[str, Any] = {"problems_split": problem_set.split, "benchmark_problems": problem_set.benchmark,
                             "decontaminated_problems": None}
    message = problem_set.benchmark_warning()
    if message and warn is not None:
        warn(message)
    if opts.decontaminate:
        from cotgen.decontaminate import DEFAULT_NGRAM, drop_contaminated

        kept, dropped = drop_contaminated(problem_set.problems, opts.decontaminate)
        notes["decontaminated_problems"] = {"against": list(opts.decontaminate), "ngram": DEFAULT_NGRAM,
                                            "dropped": dropped}
        if dropped and warn is not None:
            warn(f"{len(dropped)} problem(s) overlap {', '.join(opts.decontaminate)} and are not searched "
                 f"(the first: {dropped[0]['source']}, like {dropped[0]['benchmark_item']}); the manifest lists them")
        problem_set = replace(problem_set, problems=kept)
    return problem_set, notes


def _say_what_is_odd(warn: WarnCallback, too_long, report: SynthesizeReport, todo: int, rec: Reconciled,
                     opts: RunConfig) -> None:
    """Warnings at start: what the run will not search, what it cannot grade, what it repaired."""
    if too_long:
        warn(f"{len(too_long)} problem(s) longer than {opts.max_problem_chars:,} characters are not searched "
             f"(the first: {too_long[0].source}, {len(too_long[0].question):,} characters); "
             "raise --max-problem-chars to search them")
    if report.no_answer:
        warn(f"{report.no_answer} of the {todo} problem(s) to search have no answer: their leaves cannot be "
             "graded, so their ratings rest on the value head alone")
    for d in rec.damaged:
        warn(f"moved the damaged shard trees/{d['shard']} aside as trees/{d['name']}; its problems are searched again ({d['reason']})")
    if rec.removed_temporaries:
        warn(f"removed {len(rec.removed_temporaries)} temporary file(s) left by a stopped run")
    if rec.retried_failed:
        warn(f"{rec.retried_failed} tree(s) whose generation failed are searched again (--keep-failed keeps them)")
    if rec.dropped_duplicates:
        warn(f"{rec.dropped_duplicates} tree(s) found in two shards are kept once")


def _mark_interrupted(writer: TreeShardWriter) -> None:
    """Best effort: on a full disk even the manifest may not fit; its status then stays
    'running', which readers refuse just the same."""
    try:
        writer.update_manifest(status=INTERRUPTED)
    except OSError:
        pass


async def _run_all(
    todo, engine, policy, valuer, search: SearchConfig, opts: RunConfig, writer, live: _Live,
    report_progress: Callable[[], None] | None, own_engine: bool,
) -> None:
    """Keep `opts.concurrency` trees in flight; a new problem starts as each tree finishes."""
    pending = iter(todo)
    tasks: set[asyncio.Task] = set()

    async def ticker() -> None:
        # Rates move while trees are in flight; the callback hears of it twice a second.
        while True:
            await asyncio.sleep(0.5)
            report_progress()

    def start(problem) -> None:
        tree = Tree.new(problem.question, problem.answer, source=problem.source, model=engine.model_id,
                        config=search.to_dict())
        # The tree's own rng: the same seed and problem give the same meta actions and engine seeds.
        rng = random.Random(search.seed ^ int(tree.id, 16))
        live.running_simulations[tree.id] = 0

        def on_simulation(finished: int, tid: str = tree.id) -> None:
            live.running_simulations[tid] = finished

        tasks.add(asyncio.ensure_future(_search_one(tree, policy, valuer, search, rng, on_simulation)))

    tick = asyncio.ensure_future(ticker()) if report_progress is not None else None
    try:
        for problem in pending:
            start(problem)
            if len(tasks) >= opts.concurrency:
                break
        if report_progress is not None:
            report_progress()
        while tasks:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                tasks.discard(task)
                failure = None if task.cancelled() else task.exception()
                if failure is not None and not isinstance(failure, (KeyboardInterrupt, asyncio.CancelledError)):
                    reason = str(failure) if isinstance(failure, EngineFailed) else (
                        f"the engine failed ({type(failure).__name__}: {first_line(failure)})")
                    raise EngineFailure(reason, len(tasks) + 1) from failure
                tree = task.result()
                live.running_simulations.pop(tree.id, None)
                _account(live, tree)
                nxt = next(pending, None)
                if nxt is not None:
                    start(nxt)
            if len(live.buffer) >= opts.shard_trees:
                _flush(writer, live, everything=False, shard_trees=opts.shard_trees)
            if report_progress is not None:
                report_progress()
        crash_point("final-flush")
        _flush(writer, live, everything=True)
    finally:
        if tick is not None:
            tick.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*([tick] if tick else []), *tasks, return_exceptions=True)
        if own_engine:
            await engine.close()


class EngineFailure(Exception):
    """Inside the run loop: the engine failed, not one tree's request (EngineFailed, or an
    error that is no CotgenError: a dead engine process, a CUDA fault). The run stops and
    records no tree in flight; run() raises EngineFailed for the user."""

    def __init__(self, reason: str, in_flight: int) -> None:
        super().__init__(reason)
        self.reason, self.in_flight = reason, in_flight


async def _search_one(tree: Tree, policy, valuer, search: SearchConfig, rng: random.Random,
                      on_simulation: Callable[[int], None]) -> Tree:
    """Search one tree. A CotgenError an engine raises for one request (a prompt longer than
    the context, a request the server refused) is this tree's own failure: recorded on the
    tree, the run goes on. EngineFailed, and any error that is no CotgenError (a dead engine
    process, a CUDA fault, a bug), propagate and stop the run."""
    try:
        await run_search(tree, policy, valuer, _grade, search, rng, on_simulation=on_simulation)
    except EngineFailed:
        raise
    except CotgenError as exc:
        tree.error = f"{type(exc).__name__}: {exc}"
        assign_ratings(tree, search.negative_after, failed_ends=True)
    return tree


def _prompt_cache(engine: Engine) -> tuple[int, int]:
    """(prompt tokens sent, of them served from the prefix cache) so far."""
    stats = getattr(engine, "stats", None)
    return getattr(stats, "prompt_tokens", 0), getattr(stats, "cached_prompt_tokens", 0)


def _account(live: _Live, tree: Tree) -> None:
    live.buffer.append(tree)
    crash_point("tree-finished")
    live.simulations += tree.stats.simulations
    terminals = [n for n in tree.nodes if n.terminal and n.correct is not None]
    live.terminal_leaves += len(terminals)
    live.correct_leaves += sum(1 for n in terminals if n.correct)
    live.solved += any(n.correct for n in terminals)
    if tree.error is not None:
        live.failed += 1
        live.first_error = live.first_error or tree.error


def _flush(writer: TreeShardWriter, live: _Live, everything: bool, shard_trees: int = 0) -> None:
    """Write buffered trees: full shards only, or (at the end, on Ctrl-C) all of them."""
    while live.buffer and (everything or len(live.buffer) >= shard_trees):
        size = len(live.buffer) if everything else shard_trees
        batch = live.buffer[:size]
        # A stop signal waits until the shard is renamed and the manifest records it; the
        # trees leave the buffer only once they are on disk.
        with held_signals():
            path = writer.write(batch)
            live.buffer = live.buffer[size:]
        live.written += len(batch)
        if path is not None:
            live.shards.append(path.name)


# What a Ray worker shares with the local loop above, so that both search a problem alike.
search_tree = _search_one


def new_tree(question: str, answer: str | None, source: str, model_id: str, search: SearchConfig) -> tuple[Tree, random.Random]:
    """A problem's tree, not yet searched, and its own rng, as the local loop's start() makes
    them: same seed and problem, same meta actions and engine seeds."""
    tree = Tree.new(question, answer, source=source, model=model_id, config=search.to_dict())
    return tree, random.Random(search.seed ^ int(tree.id, 16))


def _run_ray(
    todo, opts: RunConfig, search: SearchConfig, engine_cfg: EngineConfig, settings: dict[str, Any],
    source: str, ray: RayConfig, report: SynthesizeReport, progress: ProgressCallback | None,
    stop: StopRequest | None = None,
) -> SynthesizeReport:
    """The same run on Ray workers: they write the shards, this process keeps the manifest."""
    from cotgen.executors.ray_cluster import import_ray, run_on_ray
    from cotgen.executors.worker import WorkerConfig

    import_ray()  # a missing extra is reported before the run folder is made
    out = Path(opts.out)
    writer = TreeShardWriter(out, settings)
    writer.update_manifest(problems_source=source)
    writer.drop_retried_failures()  # as the local loop: a crash may have left one
    spec = WorkerConfig(
        engine=engine_cfg, search=search, out=str(out.resolve()), tag="", concurrency=opts.concurrency,
        shard_trees=opts.shard_trees, prompts=str(opts.prompts.resolve()) if opts.prompts else None,
        hint_answer=opts.hint_answer,
    )
    t0 = time.perf_counter()

    def on_progress(p: dict[str, Any]) -> None:
        progress(RunProgress(
            total=len(todo), done=p["done"], simulations=p["simulations"], generated_tokens=p["generated_tokens"],
            seconds=time.perf_counter() - t0, correct_leaves=p["correct_leaves"],
            terminal_leaves=p["terminal_leaves"], workers=p["workers"], workers_up=p["workers_up"],
            saved=p["saved"], requeued=p["requeued"], worker_deaths=p["deaths"],
        ))

    try:
        result = run_on_ray(todo, spec, ray, writer.record, on_progress if progress is not None else None)
    except KeyboardInterrupt:
        writer.drop_retried_failures()
        _mark_interrupted(writer)
        saved = read_manifest(out).get("counts", {}).get("trees", 0)
        raise Interrupted(
            f"interrupted: {saved} finished tree(s) are saved in {out}; "
            "run the same command again to finish the rest",
            exit_code=stop.exit_code if stop is not None else 130,
        ) from None
    seconds = time.perf_counter() - t0
    trees = list(result.saved.values())
    failed = [t for t in trees if t["error"] is not None]
    simulations = sum(t["simulations"] for t in trees)
    tokens = result.generated_tokens
    report.ran = True
    report.trees = len(trees)
    report.failed = len(failed)
    report.simulations = simulations
    report.generated_tokens = tokens
    report.seconds = round(seconds, 3)
    report.tokens_per_s = round(tokens / seconds, 1) if seconds else 0.0
    report.simulations_per_s = round(simulations / seconds, 2) if seconds else 0.0
    report.correct_leaves = sum(t["correct_leaves"] for t in trees)
    report.terminal_leaves = sum(t["terminal_leaves"] for t in trees)
    report.solved_trees = sum(1 for t in trees if t["correct_leaves"])
    report.shards = sorted(result.shards)
    report.model = result.workers[0]["model"] if result.workers else engine_cfg.model
    report.executor = "ray"
    report.workers = ray.workers
    report.worker_deaths = result.worker_deaths
    report.requeued = result.requeued
    report.search_seconds = round(result.search_seconds, 3)
    report.steady_trees_per_s = round(result.steady_trees_per_s, 3)
    writer.drop_retried_failures()
    writer.update_manifest(last_run=report.as_json(), status=COMPLETE)
    if trees and len(failed) == len(trees):
        raise AllTreesFailed(f"every tree failed ({len(failed)}); the first error: {failed[0]['error']}", report)
    return report
