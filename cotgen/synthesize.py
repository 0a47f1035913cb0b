"""The synthesize run: problems in, many searched trees in flight on one engine, shards out."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cotgen.config import EngineConfig
from cotgen.engines.base import Engine
from cotgen.errors import Interrupted, RunError, UsageError
from cotgen.executors.ray_cluster import RayOptions
from cotgen.policy import EnginePolicy, EngineValuer, load_prompts
from cotgen.search.config import SearchConfig
from cotgen.search.mcts import TreeSearch
from cotgen.search.ratings import assign_ratings
from cotgen.shards import TreeShardWriter, finished_tree_ids, read_manifest
from cotgen.tree import Tree, tree_id

# Settings a resumed run must share with the run that started the folder: they shape trees.
_SHAPING = ("search", "model", "prompts", "hint_answer")


@dataclass(frozen=True)
class RunOptions:
    """Everything about a synthesize run that is not a search or engine setting."""

    problems: str  # what --problems takes: a file, a dataset id, builtin:arith
    out: Path  # the run folder: trees/part-*.parquet + manifest.json
    split: str = "test"  # dataset split, for dataset ids and folders
    question_field: str | None = None  # None = guess from common names
    answer_field: str | None = None  # None = guess from common names
    limit: int | None = None  # most problems to take (after --skip); None = all
    skip: int = 0  # problems to pass over first
    problem_seed: int = 0  # seeds builtin generators
    concurrency: int = 64  # trees in flight at once, all on one engine
    shard_trees: int = 64  # finished trees per shard; smaller loses less on a crash
    prompts: Path | None = None  # a folder of templates replacing the packaged prompts/
    hint_answer: bool = False  # show the gold answer to the policy (LLaMA-O1's hint)

    def __post_init__(self) -> None:
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
    searches: dict[str, TreeSearch] = field(default_factory=dict)  # in flight
    shards: list[str] = field(default_factory=list)
    first_error: str | None = None


def _grade(text: str, gold: str) -> bool | None:
    from cotgen.verify import grade

    return grade(text, gold).correct


def _settings(search: SearchConfig, engine_cfg: EngineConfig, prompts_digest: str, opts: RunOptions) -> dict[str, Any]:
    return {
        "search": search.to_dict(),
        "model": engine_cfg.model,
        "prompts": prompts_digest,
        "hint_answer": opts.hint_answer,
        "engine": engine_cfg.to_dict(),
    }


def _refuse_changed_settings(out: Path, new: dict[str, Any]) -> None:
    old = read_manifest(out).get("settings")
    if not old:
        return
    changed = []
    for key in _SHAPING:
        a, b = old.get(key), new.get(key)
        if key == "search" and isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                if name != "parallel" and a.get(name) != b.get(name):
                    changed.append(f"{name}: {a.get(name)!r} -> {b.get(name)!r}")
        elif a != b:
            changed.append(f"{key}: {a!r} -> {b!r}")
    if changed:
        raise UsageError(
            f"{out} holds trees made with other settings ({'; '.join(changed)}); "
            "use another --out, or the same settings to resume"
        )


def run(
    opts: RunOptions,
    search: SearchConfig,
    engine_cfg: EngineConfig,
    *,
    engine: Engine | None = None,
    console: Console | None = None,
    quiet: bool = False,
    ray: RayOptions | None = None,
) -> dict[str, Any]:
    """Search a tree for every problem not yet in `opts.out`; returns the run's summary.

    `engine` replaces the one `engine_cfg` describes (tests, benchmarks). Ctrl-C saves the
    finished trees and raises Interrupted; a tree whose search fails is saved with its error.
    With `ray`, Ray workers search the trees, each on its own engine (cotgen.executors).
    """
    from cotgen.problems import load_problems

    console = console or Console(stderr=True)
    prompts = load_prompts(opts.prompts)  # broken templates fail here, before any model loads
    settings = _settings(search, engine_cfg, prompts.digest(), opts)
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    _refuse_changed_settings(out, settings)
    problem_set = load_problems(
        opts.problems, split=opts.split, question_field=opts.question_field, answer_field=opts.answer_field,
        limit=opts.limit, skip=opts.skip, seed=opts.problem_seed,
    )
    done_ids = finished_tree_ids(out) if out.is_dir() else set()
    todo = [p for p in problem_set.problems if tree_id(p.question, p.answer) not in done_ids]
    summary: dict[str, Any] = {
        "out": str(out),
        "problems": len(problem_set.problems),
        "dropped_rows": len(problem_set.skipped),
        "already_done": len(problem_set.problems) - len(todo),
        "trees": 0,
        "failed": 0,
    }
    if not todo:
        if not quiet:
            console.print(f"{out}: all {len(problem_set.problems)} problems already have trees; nothing to do", markup=False)
        return summary

    if ray is not None:
        return _run_ray(todo, opts, search, engine_cfg, settings, problem_set.source, ray, summary, console, quiet)
    own_engine = engine is None
    if engine is None:
        from cotgen.engines import build_engine

        engine = build_engine(engine_cfg)
    writer = TreeShardWriter(out, settings)
    writer.update_manifest(problems_source=problem_set.source)
    policy = EnginePolicy(engine, prompts, search, hint_answer=opts.hint_answer)
    valuer = EngineValuer(engine, prompts, search, grade=_grade)
    live = _Live()
    t0 = time.perf_counter()
    try:
        asyncio.run(_run_all(todo, engine, policy, valuer, search, opts, writer, live, console, quiet, own_engine))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _flush(writer, live, everything=True)
        raise Interrupted(
            f"interrupted: {live.written} finished tree(s) are saved in {out}; "
            "run the same command again to finish the rest"
        ) from None
    seconds = time.perf_counter() - t0
    tokens = policy.generated_tokens + valuer.generated_tokens
    summary.update(
        trees=live.written,
        failed=live.failed,
        simulations=live.simulations,
        generated_tokens=tokens,
        seconds=round(seconds, 3),
        tokens_per_s=round(tokens / seconds, 1) if seconds else 0.0,
        simulations_per_s=round(live.simulations / seconds, 2) if seconds else 0.0,
        correct_leaves=live.correct_leaves,
        terminal_leaves=live.terminal_leaves,
        solved_trees=live.solved,
        shards=live.shards,
        model=engine.model_id,
    )
    writer.update_manifest(last_run=summary)
    if not quiet:
        _print_summary(console, summary)
    if live.written and live.failed == live.written:
        raise RunError(f"every tree failed ({live.failed}); the first error: {live.first_error}")
    return summary


async def _run_all(
    todo, engine, policy, valuer, search: SearchConfig, opts: RunOptions, writer, live: _Live,
    console: Console, quiet: bool, own_engine: bool,
) -> None:
    """Keep `opts.concurrency` trees in flight; a new problem starts as each tree finishes."""
    pending = iter(todo)
    tasks: set[asyncio.Task] = set()
    progress = Progress(
        TextColumn("trees"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rates]}"), TimeRemainingColumn(),
        console=console, disable=quiet, transient=False,
    )
    task_id = progress.add_task("synthesize", total=len(todo), rates="")
    t0 = time.perf_counter()

    def refresh() -> None:
        elapsed = max(time.perf_counter() - t0, 1e-9)
        sims = live.simulations + sum(s.finished for s in live.searches.values())
        tokens = policy.generated_tokens + valuer.generated_tokens
        rate = f"{live.correct_leaves / live.terminal_leaves:.0%}" if live.terminal_leaves else "-"
        progress.update(task_id, rates=f"{sims / elapsed:.1f} sim/s  {tokens / elapsed:,.0f} tok/s  correct leaves {rate}")

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.5)
            refresh()

    def start(problem) -> None:
        tree = Tree.new(problem.question, problem.answer, source=problem.source, model=engine.model_id,
                        config=search.to_dict())
        # The tree's own rng: the same seed and problem give the same meta actions and engine seeds.
        rng = random.Random(search.seed ^ int(tree.id, 16))
        ts = TreeSearch(tree, policy, valuer, _grade, search, rng)
        live.searches[tree.id] = ts
        tasks.add(asyncio.ensure_future(_search_one(ts)))

    with progress:
        tick = asyncio.ensure_future(ticker())
        try:
            for problem in pending:
                start(problem)
                if len(tasks) >= opts.concurrency:
                    break
            while tasks:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    tasks.discard(task)
                    tree = task.result()
                    live.searches.pop(tree.id, None)
                    _account(live, tree)
                    progress.advance(task_id)
                    nxt = next(pending, None)
                    if nxt is not None:
                        start(nxt)
                if len(live.buffer) >= opts.shard_trees:
                    _flush(writer, live, everything=False, shard_trees=opts.shard_trees)
                refresh()
            _flush(writer, live, everything=True)
        finally:
            tick.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(tick, *tasks, return_exceptions=True)
            if own_engine:
                await engine.close()


async def _search_one(ts: TreeSearch) -> Tree:
    """Search one tree; a failure is recorded on the tree and does not stop the run."""
    try:
        await ts.run()
    except Exception as exc:  # any failure of this tree's generation: record it, go on
        ts.tree.error = f"{type(exc).__name__}: {exc}"
    assign_ratings(ts.tree)
    return ts.tree


def _account(live: _Live, tree: Tree) -> None:
    live.buffer.append(tree)
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
        batch, live.buffer = live.buffer[:size], live.buffer[size:]
        path = writer.write(batch)
        live.written += len(batch)
        if path is not None:
            live.shards.append(path.name)


def _run_ray(
    todo, opts: RunOptions, search: SearchConfig, engine_cfg: EngineConfig, settings: dict[str, Any],
    source: str, ray: RayOptions, summary: dict[str, Any], console: Console, quiet: bool,
) -> dict[str, Any]:
    """The same run on Ray workers: they write the shards, this process keeps the manifest."""
    from cotgen.executors.ray_cluster import import_ray, run_on_ray
    from cotgen.executors.worker import WorkerSpec

    import_ray()  # a missing extra is reported before the run folder is made
    out = Path(opts.out)
    writer = TreeShardWriter(out, settings)
    writer.update_manifest(problems_source=source)
    spec = WorkerSpec(
        engine=engine_cfg, search=search, out=str(out.resolve()), tag="", concurrency=opts.concurrency,
        shard_trees=opts.shard_trees, prompts=str(opts.prompts.resolve()) if opts.prompts else None,
        hint_answer=opts.hint_answer,
    )
    progress = Progress(
        TextColumn("trees"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rates]}"),
        TimeRemainingColumn(), console=console, disable=quiet, transient=False,
    )
    task_id = progress.add_task("synthesize", total=len(todo), rates="starting Ray workers")
    t0 = time.perf_counter()

    def on_progress(p: dict[str, Any]) -> None:
        elapsed = max(time.perf_counter() - t0, 1e-9)
        rate = f"{p['correct_leaves'] / p['terminal_leaves']:.0%}" if p["terminal_leaves"] else "-"
        lost = f"  requeued {p['requeued']} ({p['deaths']} worker deaths)" if p["deaths"] else ""
        progress.update(task_id, completed=p["done"], rates=(
            f"workers {p['workers_up']}/{p['workers']}  saved {p['saved']}  "
            f"{p['simulations'] / elapsed:.1f} sim/s  {p['generated_tokens'] / elapsed:,.0f} tok/s  "
            f"correct leaves {rate}{lost}"
        ))

    try:
        with progress:
            result = run_on_ray(todo, spec, ray, writer.record, on_progress)
    except KeyboardInterrupt:
        saved = read_manifest(out).get("counts", {}).get("trees", 0)
        raise Interrupted(
            f"interrupted: {saved} finished tree(s) are saved in {out}; "
            "run the same command again to finish the rest"
        ) from None
    seconds = time.perf_counter() - t0
    trees = list(result.saved.values())
    terminal = sum(t["terminal_leaves"] for t in trees)
    correct = sum(t["correct_leaves"] for t in trees)
    simulations = sum(t["simulations"] for t in trees)
    failed = [t for t in trees if t["error"] is not None]
    tokens = result.generated_tokens
    summary.update(
        trees=len(trees),
        failed=len(failed),
        simulations=simulations,
        generated_tokens=tokens,
        seconds=round(seconds, 3),
        tokens_per_s=round(tokens / seconds, 1) if seconds else 0.0,
        simulations_per_s=round(simulations / seconds, 2) if seconds else 0.0,
        correct_leaves=correct,
        terminal_leaves=terminal,
        solved_trees=sum(1 for t in trees if t["correct_leaves"]),
        shards=sorted(result.shards),
        model=result.workers[0]["model"] if result.workers else engine_cfg.model,
        executor="ray",
        workers=ray.workers,
        search_seconds=round(result.search_seconds, 3),
        steady_trees_per_s=round(result.steady_trees_per_s, 3),
        worker_deaths=result.worker_deaths,
        requeued=result.requeued,
    )
    writer.update_manifest(last_run=summary)
    if not quiet:
        _print_summary(console, summary)
    if trees and len(failed) == len(trees):
        raise RunError(f"every tree failed ({len(failed)}); the first error: {failed[0]['error']}")
    return summary


def _print_summary(console: Console, s: dict[str, Any]) -> None:
    table = Table(title=f"synthesize: {s['out']}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rate = f"{s['correct_leaves'] / s['terminal_leaves']:.1%}" if s["terminal_leaves"] else "-"
    rows = [
        ("problems", s["problems"]),
        ("already done (skipped)", s["already_done"]),
        ("trees written", s["trees"]),
        ("failed trees", s["failed"]),
        ("trees with a correct leaf", s["solved_trees"]),
        ("simulations", s["simulations"]),
        ("correct / graded leaves", f"{s['correct_leaves']} / {s['terminal_leaves']} ({rate})"),
        ("generated tokens", f"{s['generated_tokens']:,}"),
        ("tokens/s", f"{s['tokens_per_s']:,.1f}"),
        ("simulations/s", f"{s['simulations_per_s']:,.2f}"),
        ("seconds", f"{s['seconds']:,.1f}"),
        ("shards", ", ".join(s["shards"]) or "-"),
    ]
    for k, v in rows:
        table.add_row(k, str(v))
    console.print(table)
