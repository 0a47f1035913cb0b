"""The synthesize run: problems in, many searched trees in flight on one engine, shards out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotgen.engines.base import Engine
from cotgen.engines.config import EngineConfig
from cotgen.errors import EngineFailed, Interrupted, RunError, UsageError, environment_error
from cotgen.executors.base import ProgressCallback, RunProgress, RunResult
from cotgen.executors.job import EngineFailure
from cotgen.executors.local import LocalExecutor
from cotgen.executors.ray_cluster import RayConfig
from cotgen.executors.worker import WorkerConfig
from cotgen.io.atomic import crash_point
from cotgen.io.layout import COMPLETE, INTERRUPTED, RUNNING, read_manifest
from cotgen.io.runfolder import Reconciled, RunLock, reconcile
from cotgen.io.writers import ShardInfo, TreeShardWriter
from cotgen.policy import load_prompts
from cotgen.search.config import SearchConfig
from cotgen.stopping import StopRequest, held_signals, terminate_as_interrupt
from cotgen.tree import tree_id

__all__ = ["AllTreesFailed", "ProgressCallback", "RunConfig", "RunProgress", "SynthesizeReport", "run"]

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
    # --engine chat: tokens as the API reported them, requests, the continuation used
    # (engines/chat.py ChatEngine.api_usage), and their cost at --price-in/--price-out.
    api: dict[str, Any] | None = None
    cost_usd: float | None = None

    def as_json(self) -> dict[str, Any]:
        keys = ["out", "problems", "dropped_rows", "already_done", "too_long", "no_answer", "retried_failed",
                "trees", "failed"]
        if self.ran:
            keys += ["simulations", "generated_tokens", "seconds", "tokens_per_s", "simulations_per_s",
                     "correct_leaves", "terminal_leaves", "solved_trees", "shards", "model", "executor"]
            if self.prompt_tokens is not None:
                keys += ["prompt_tokens", "cached_prompt_tokens", "prefix_cache_hit_rate"]
            if self.api is not None:
                keys += ["api", "cost_usd"]
            if self.executor == "ray":
                keys += ["workers", "worker_deaths", "requeued", "search_seconds", "steady_trees_per_s"]
        return {k: getattr(self, k) for k in keys}


class AllTreesFailed(RunError):
    """Every tree of the run failed; `report` says what the run did all the same."""

    def __init__(self, message: str, report: SynthesizeReport) -> None:
        super().__init__(message)
        self.report = report


def _settings(search: SearchConfig, engine_cfg: EngineConfig, prompts_digest: str, opts: RunConfig) -> dict[str, Any]:
    return {
        "search": search.to_dict(),
        "model": engine_cfg.model,
        "prompts": prompts_digest,
        "hint_answer": opts.hint_answer,
        "engine": engine_cfg.to_dict(),
        "model_fingerprints": model_fingerprints(search, engine_cfg),
    }


def model_fingerprints(search: SearchConfig, engine_cfg: EngineConfig) -> dict[str, Any]:
    """Fingerprints (cotgen.io.fingerprint) of the models this process loads from a local
    folder, by setting: `model` (hf and vllm; a server's model is the server's business) and
    `value_model` (the PRM). A Hub id or an alias has none: its name is its identity."""
    from cotgen.io.fingerprint import folder_fingerprint
    from cotgen.models import local_model_folder

    named = {"value_model": search.value_model}
    if engine_cfg.engine in ("hf", "vllm"):
        named["model"] = engine_cfg.model
    out = {}
    for key, name in named.items():
        folder = local_model_folder(name) if name else None
        if folder is not None:
            out[key] = folder_fingerprint(folder)
    return out


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
    if not changed:
        changed = _changed_model_files(old, new)
    if changed:
        raise UsageError(
            f"{out} holds trees made with other settings ({'; '.join(changed)}); "
            "use another --out, or the same settings to resume"
        )


def _changed_model_files(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """A local model folder (the policy, the PRM) whose files changed under the same name:
    a model retrained into the folder the run started with. A folder started before cotgen
    recorded fingerprints has none, and is not checked: there is nothing to compare with."""
    from cotgen.io.fingerprint import what_changed

    before = old.get("model_fingerprints")
    if not isinstance(before, dict):
        return []
    after = new.get("model_fingerprints") or {}
    names = {"model": new.get("model"), "value_model": (new.get("search") or {}).get("value_model")}
    changed = []
    for key, was in sorted(before.items()):
        now = after.get(key)
        # Compared only where both runs read the folder: the same name served by a server
        # (--engine openai after vllm, say) is not fingerprinted, and is not a change.
        if isinstance(was, dict) and isinstance(now, dict) and now.get("sha256") != was.get("sha256"):
            changed.append(f"{key}: {names.get(key)!r} has other files ({what_changed(was, now)}) "
                           "since this folder's trees were made")
    return changed


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
    if ray is not None and engine_cfg.engine == "chat":  # here, not only in the CLI: a library call too
        raise UsageError("synthesize: --engine chat runs with --executor local: one process sends every "
                         "request (--max-requests caps them) and counts the cost against --max-cost once")
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
            return _run_locked(opts, search, engine_cfg, settings, out, engine, progress, warn, stop, ray)
        except KeyboardInterrupt:
            # Stopped before the executor started (loading the problems, reconciling): nothing to save.
            raise Interrupted(f"interrupted ({stop.name}) before any tree was searched", exit_code=stop.exit_code) from None
        finally:
            lock.release()


def _run_locked(opts: RunConfig, search: SearchConfig, engine_cfg: EngineConfig, settings: dict[str, Any],
                out: Path, engine: Engine | None, progress: ProgressCallback | None,
                warn: WarnCallback | None, stop: StopRequest, ray: RayConfig | None = None) -> SynthesizeReport:
    """Prepare the run (problems, the folder reconciled, what is left to search), hand it to
    the executor, and finish: the report and the manifest."""
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

    spec = WorkerConfig(
        engine=engine_cfg, search=search, out=str(out.resolve()), tag=None, concurrency=opts.concurrency,
        shard_trees=opts.shard_trees, prompts=str(opts.prompts.resolve()) if opts.prompts else None,
        hint_answer=opts.hint_answer,
    )
    executor = LocalExecutor(engine) if ray is None else _ray_executor(ray)
    saved = 0  # trees this run put in shards

    def record(info: ShardInfo) -> None:
        # The workers wrote the shard; this process, the manifest's one writer, records it.
        # A stop signal waits until the manifest says so.
        nonlocal saved
        with held_signals():
            writer.record(info)
            saved += info.rows
        crash_point("manifest-written")

    try:
        result = executor.run(todo, spec, record, progress, stop)
    except KeyboardInterrupt as exc:
        _stopped_early(writer, **_spent(exc))
        raise Interrupted(
            f"interrupted ({stop.name}): {saved} finished tree(s) are saved in {out}; "
            "run the same command again to finish the rest",
            exit_code=stop.exit_code,
        ) from None
    except EngineFailure as exc:
        # Every tree in flight failed because the engine did, not because of its problem:
        # none is recorded, so the same command searches them again.
        _stopped_early(writer, **_spent(exc))
        failed = EngineFailed(
            f"{exc.reason}. The run stopped: {saved} finished tree(s) are saved in {out}, "
            f"the {exc.in_flight} in flight are not; run the same command again to finish"
        )
        failed.exit_code = exc.exit_code  # 3 when --max-cost stopped it (engines/chat.py)
        raise failed from None
    except OSError as exc:
        known = environment_error(exc, "write the run", where=out)
        _mark_interrupted(writer)
        if known is None:
            raise
        raise RunError(f"{known}; {saved} finished tree(s) are saved in {out}: "
                       "run the same command again once it can write") from None
    except BaseException:
        _mark_interrupted(writer)  # the folder's problems are not all searched: say so
        raise
    fill_report(report, result, ray)
    if result.stopped is not None:
        _stopped_early(writer, last_run=report.as_json())
        raise RunError(f"{result.stopped}: {saved} finished tree(s) are saved in {out}; "
                       "run the same command again to go on")
    writer.drop_retried_failures()
    writer.update_manifest(last_run=report.as_json(), status=COMPLETE)
    crash_point("run-complete")
    if report.trees and report.failed == report.trees:
        raise AllTreesFailed(f"every tree failed ({report.failed}); the first error: {result.totals.first_error}",
                             report)
    return report


def fill_report(report: SynthesizeReport, result: RunResult, ray: RayConfig | None) -> None:
    """The report's figures from what the executor did: the one place they are computed
    (the sums of the trees' tallies, executors.job.RunTotals)."""
    totals = result.totals
    seconds = result.seconds
    report.ran = True
    report.trees = totals.trees
    report.failed = totals.failed
    report.simulations = totals.simulations
    report.generated_tokens = result.generated_tokens
    report.seconds = round(seconds, 3)
    report.tokens_per_s = round(result.generated_tokens / seconds, 1) if seconds else 0.0
    report.simulations_per_s = round(totals.simulations / seconds, 2) if seconds else 0.0
    report.correct_leaves = totals.correct_leaves
    report.terminal_leaves = totals.terminal_leaves
    report.solved_trees = totals.solved
    report.shards = sorted(result.shards)
    report.model = result.model
    if result.prompt_tokens is not None:
        prompt, cached = result.prompt_tokens, result.cached_prompt_tokens or 0
        report.prompt_tokens, report.cached_prompt_tokens = prompt, cached
        report.prefix_cache_hit_rate = round(cached / prompt, 4) if prompt else None
    if result.api is not None:  # --engine chat
        report.api, report.cost_usd = result.api, result.api["cost_usd"]
    if ray is not None:
        report.executor = "ray"
        report.workers = ray.workers
        report.worker_deaths = result.worker_deaths
        report.requeued = result.requeued
        report.search_seconds = round(result.search_seconds, 3)
        report.steady_trees_per_s = round(result.steady_trees_per_s, 3)


def _ray_executor(ray: RayConfig):
    from cotgen.executors.ray_cluster import RayExecutor, import_ray

    import_ray()  # a missing extra is reported before any worker starts
    return RayExecutor(ray)


def _spent(exc: BaseException) -> dict[str, Any]:
    """What a stopped --engine chat run spent (executors/local.py puts it on the exception),
    as the manifest's last_run records it for a finished run."""
    api = getattr(exc, "api", None)
    return {"last_run": {"status": INTERRUPTED, "api": api, "cost_usd": api.get("cost_usd")}} if api else {}


def _stopped_early(writer: TreeShardWriter, **fields: Any) -> None:
    """The run stopped with problems left: the folder says so (status interrupted). A second
    Ctrl-C must not cut this short."""
    with held_signals(deliver=False):
        writer.drop_retried_failures()
        writer.update_manifest(status=INTERRUPTED, **fields)


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
