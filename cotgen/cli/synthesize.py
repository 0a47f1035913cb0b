"""`cotgen synthesize`: search trees for a set of problems and write them as tree shards."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cotgen.cli.app import app, emit_json, err, quiet_libraries
from cotgen.cli.options import JsonFlag, OutDir, QuietFlag
from cotgen.engines.config import EngineConfig
from cotgen.errors import UsageError
from cotgen.executors.ray_cluster import RayConfig
from cotgen.reward_model import PRM_GPU_MEMORY
from cotgen.search.config import SearchConfig
from cotgen.synthesize import AllTreesFailed, RunConfig, RunProgress, SynthesizeReport, run

_S = SearchConfig()  # the defaults live in the dataclasses, shown here in --help
_E = EngineConfig()
_R = RunConfig(problems="", out=Path("."))
_RAY = RayConfig()
EXECUTORS = ("local", "ray")


@app.command()
def synthesize(
    problems: Annotated[str, typer.Option("--problems", "-p", help="A .jsonl/.json/.parquet file, a dataset id (gsm8k, math500), or builtin:arith / builtin:letters.")],
    out_dir: OutDir,
    model: Annotated[str, typer.Option(help="qwen2.5-7b (and other sizes), tiny, a local folder or a Hub id.")] = _E.model,
    engine: Annotated[str, typer.Option(help="hf | vllm | openai | chat (a chat API: OpenAI, DeepSeek, Together, vLLM serve)")] = _E.engine,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N | mps")] = _E.device,
    dtype: Annotated[str, typer.Option(help="auto | float32 | float16 | bfloat16")] = _E.dtype,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow a model repo's own Python code.")] = False,
    max_batch: Annotated[int, typer.Option(help="Most sequences in one engine batch.")] = _E.max_batch,
    base_url: Annotated[str, typer.Option(help="openai and chat engines: the server's URL up to /v1.")] = _E.base_url,
    api_key_env: Annotated[str | None, typer.Option(help="chat: the environment variable holding the API key (default COTGEN_API_KEY, then OPENAI_API_KEY).")] = None,
    continuation: Annotated[str, typer.Option(help="chat: how a partial solution is continued, auto (probed) | prefill (vLLM) | prefix (DeepSeek) | restate.")] = _E.continuation,
    max_requests: Annotated[int, typer.Option(help="chat: requests in flight at once.")] = _E.max_requests,
    request_timeout: Annotated[float, typer.Option(help="openai and chat: seconds one request may take.")] = _E.request_timeout_s,
    price_in: Annotated[float | None, typer.Option(help="chat: USD per 1M prompt tokens (gives cost_usd).")] = None,
    price_out: Annotated[float | None, typer.Option(help="chat: USD per 1M completion tokens (gives cost_usd).")] = None,
    max_cost: Annotated[float | None, typer.Option(help="chat: stop the run once it has spent this many USD (finished trees saved; exit code 3).")] = None,
    split: Annotated[str | None, typer.Option(help="Dataset split; default: train, or the dataset's only split. A benchmark's test split warns.")] = _R.split,
    question_field: Annotated[str | None, typer.Option(help="Column holding the question.")] = None,
    answer_field: Annotated[str | None, typer.Option(help="Column holding the gold answer.")] = None,
    limit: Annotated[int | None, typer.Option(help="Take at most this many problems.")] = None,
    skip: Annotated[int, typer.Option(help="Pass over this many problems first.")] = 0,
    problem_seed: Annotated[int, typer.Option(help="Seed of builtin problem generators.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Trees in flight at once on the one engine.")] = _R.concurrency,
    shard_trees: Annotated[int, typer.Option(help="Finished trees per shard.")] = _R.shard_trees,
    prompts: Annotated[Path | None, typer.Option(help="A folder of prompt templates replacing the packaged ones.")] = None,
    hint_answer: Annotated[bool, typer.Option("--hint-answer", help="Show the gold answer to the policy (LLaMA-O1's hint).")] = False,
    max_problem_chars: Annotated[int, typer.Option(help="Longer questions are not searched (refused by size, before tokenizing).")] = _R.max_problem_chars,
    decontaminate: Annotated[str | None, typer.Option(help="Benchmarks (math500,gsm8k,... or files) whose questions are dropped before the search, as `cotgen decontaminate` would.")] = None,
    keep_failed: Annotated[bool, typer.Option("--keep-failed", help="On resume, keep trees whose generation failed instead of searching them again.")] = False,
    simulations: Annotated[int, typer.Option(help="Simulations per tree: each is one rollout to a final answer.")] = _S.simulations,
    samples: Annotated[int, typer.Option(help="The first rollouts all start at the root (best-of-N inside the tree).")] = _S.samples,
    widen: Annotated[float, typer.Option(help="Gold hidden: the root starts another sample while it has fewer than widen x sqrt(simulations started so far); 0 = off (the default; it did not pay on held-out problems).")] = _S.widen,
    branch: Annotated[int, typer.Option(help="Rollouts that may start at one inner node.")] = _S.branch,
    enough_correct: Annotated[int, typer.Option(help="Stop a tree once this many rollouts ended correct; 0 = never.")] = _S.enough_correct,
    c_puct: Annotated[float, typer.Option(help="PUCT exploration weight.")] = _S.c_puct,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = _S.temperature,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling.")] = _S.top_p,
    max_tokens: Annotated[int, typer.Option(help="Token limit of one rollout (the rest of a solution).")] = _S.max_tokens,
    max_step_tokens: Annotated[int, typer.Option(help="Token limit of one critic or refine.")] = _S.max_step_tokens,
    max_depth: Annotated[int, typer.Option(help="Deepest step; a rollout's steps beyond it are joined into the last.")] = _S.max_depth,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Gold visible: roll out inside failed paths to find their first error (binary search).")] = _S.probe,
    negative_after: Annotated[int, typer.Option(help="A step no correct answer is reached through is rated negative after this many failed rollouts.")] = _S.negative_after,
    critics: Annotated[int, typer.Option(help="Critics per tree, each on the estimated first error of a failed path.")] = _S.critics,
    refine: Annotated[bool, typer.Option("--refine/--no-refine", help="Give critics a refine child that rolls out to an answer.")] = _S.refine,
    value: Annotated[str, typer.Option(help="Gold hidden: how a final answer is valued, judge | confidence | prm.")] = _S.value_mode,
    value_model: Annotated[str | None, typer.Option("--value-model", help="--value prm: the process reward model, a folder (cotgen model train-prm) or Hub id.")] = None,
    prm_gpu_memory: Annotated[float, typer.Option("--prm-gpu-memory", help="vllm, --value prm: the PRM's share of GPU memory, taken out of the policy's.")] = PRM_GPU_MEMORY,
    virtual_loss: Annotated[float, typer.Option(help="Virtual loss of a simulation in flight.")] = _S.virtual_loss,
    parallel: Annotated[int, typer.Option(help="Simulations of one tree in flight at once.")] = _S.parallel,
    seed: Annotated[int, typer.Option(help="Search seed (with the tree id, seeds each tree).")] = _S.seed,
    executor: Annotated[str, typer.Option(help="local (one engine in this process) | ray (one engine per Ray worker).")] = "local",
    workers: Annotated[int, typer.Option(help="ray: workers, each a Ray actor with its own engine.")] = _RAY.workers,
    ray_address: Annotated[str | None, typer.Option(help="ray: join this cluster (auto, HOST:PORT); default: start a local one on 127.0.0.1.")] = None,
    gpus_per_worker: Annotated[float, typer.Option(help="ray: GPUs reserved for each worker.")] = _RAY.gpus_per_worker,
    cpus_per_worker: Annotated[float, typer.Option(help="ray: CPUs reserved for each worker (and its torch threads).")] = _RAY.cpus_per_worker,
    worker_restarts: Annotated[int, typer.Option(help="ray: deaths one worker may have before the run stops with an error.")] = _RAY.worker_restarts,
    json_out: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Search an MCTS tree of reasoning steps for every problem; write them under --out."""
    try:
        search = SearchConfig(
            simulations=simulations, samples=samples, widen=widen, branch=branch, enough_correct=enough_correct,
            c_puct=c_puct, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
            max_step_tokens=max_step_tokens, max_depth=max_depth, probe=probe, negative_after=negative_after,
            critics=critics, refine=refine, value_mode=value, value_model=value_model, virtual_loss=virtual_loss,
            parallel=parallel, seed=seed,
        )
        engine_cfg = EngineConfig(
            model=model, engine=engine, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
            max_batch=max_batch, base_url=base_url, seed=seed, api_key_env=api_key_env, continuation=continuation,
            max_requests=max_requests, request_timeout_s=request_timeout, price_in=price_in, price_out=price_out,
            max_cost=max_cost,
            prm_gpu_memory_utilization=prm_gpu_memory if value == "prm" and engine == "vllm" else 0.0,
        )
        opts = RunConfig(
            problems=problems, out=out_dir, split=split, question_field=question_field,
            answer_field=answer_field, limit=limit, skip=skip, problem_seed=problem_seed,
            concurrency=concurrency, shard_trees=shard_trees, prompts=prompts, hint_answer=hint_answer,
            max_problem_chars=max_problem_chars, keep_failed=keep_failed,
            decontaminate=tuple(n.strip() for n in (decontaminate or "").split(",") if n.strip()),
        )
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, not '{executor}'")
        ray = None
        if executor == "ray":
            ray = RayConfig(workers=workers, address=ray_address, gpus_per_worker=gpus_per_worker,
                             cpus_per_worker=cpus_per_worker, worker_restarts=worker_restarts)
        elif ray_address is not None:
            raise ValueError("--ray-address needs --executor ray")
    except ValueError as exc:
        raise UsageError(f"synthesize: {exc}") from None
    if ray is not None:
        from cotgen.executors.ray_cluster import import_ray

        import_ray()  # without the extra: say how to install it before anything else happens
    if quiet:  # vLLM reads this when first imported, and so does its engine core process
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    bar = _ProgressBar()

    def warn(message: str) -> None:
        bar.stop()  # a line of its own, not inside the bar
        err.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    try:
        with quiet_libraries(quiet):
            report = run(opts, search, engine_cfg, progress=None if quiet else bar.update,
                         warn=None if quiet else warn, ray=ray)
    except AllTreesFailed as exc:
        bar.stop()
        if not quiet:
            _print_report(exc.report)
        raise
    finally:
        bar.stop()
    if not quiet:
        _print_report(report)
    if json_out:
        emit_json(report.as_json(), sort_keys=True)


class _ProgressBar:
    """A rich progress bar on stderr, started by the run's first progress report."""

    def __init__(self) -> None:
        self.progress: Progress | None = None

    def update(self, p: RunProgress) -> None:
        if self.progress is None:
            self.progress = Progress(
                TextColumn("trees"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rates]}"), TimeRemainingColumn(),
                console=err, transient=False,
            )
            self.task = self.progress.add_task("synthesize", total=p.total, rates="")
            self.progress.start()
        elapsed = max(p.seconds, 1e-9)
        rate = f"{p.correct_leaves / p.terminal_leaves:.0%}" if p.terminal_leaves else "-"
        rates = f"{p.simulations / elapsed:.1f} sim/s  {p.generated_tokens / elapsed:,.0f} tok/s  correct leaves {rate}"
        if p.workers:  # --executor ray: who is up, what is safely in shards, what came back
            rates = f"workers {p.workers_up}/{p.workers}  saved {p.saved}  {rates}"
            if p.worker_deaths:
                rates += f"  requeued {p.requeued} ({p.worker_deaths} worker deaths)"
        self.progress.update(self.task, completed=p.done, rates=rates)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _print_report(s: SynthesizeReport) -> None:
    if not s.ran:
        err.print(f"{s.out}: all {s.problems} problems already have trees; nothing to do", markup=False)
        return
    table = Table(title=f"synthesize: {s.out}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rate = f"{s.correct_leaves / s.terminal_leaves:.1%}" if s.terminal_leaves else "-"
    rows = [
        ("problems", s.problems),
        ("already done (skipped)", s.already_done),
        ("trees written", s.trees),
        ("failed trees", s.failed),
        ("trees with a correct leaf", s.solved_trees),
        ("simulations", s.simulations),
        ("correct / graded leaves", f"{s.correct_leaves} / {s.terminal_leaves} ({rate})"),
        ("generated tokens", f"{s.generated_tokens:,}"),
        ("tokens/s", f"{s.tokens_per_s:,.1f}"),
        ("simulations/s", f"{s.simulations_per_s:,.2f}"),
        ("seconds", f"{s.seconds:,.1f}"),
        ("shards", ", ".join(s.shards) or "-"),
    ]
    if s.executor == "ray":
        rows[-1:-1] = [("Ray workers", s.workers), ("worker deaths / problems requeued", f"{s.worker_deaths} / {s.requeued}")]
    if s.prompt_tokens:
        rows.append(("prompt tokens from the prefix cache",
                     f"{s.cached_prompt_tokens:,} / {s.prompt_tokens:,} ({s.prefix_cache_hit_rate:.1%})"))
    if s.api is not None:  # --engine chat: what the API reported, and what it cost
        rows.append(("API requests (retries)", f"{s.api['requests']:,} ({s.api['retries']:,})"))
        rows.append(("API prompt / completion tokens", f"{s.api['prompt_tokens']:,} / {s.api['completion_tokens']:,}"))
        rows.append(("continuation", s.api["continuation"]))
        rows.append(("cost (USD)", "-" if s.cost_usd is None else f"{s.cost_usd:.6f}"))
    for k, v in rows:
        table.add_row(k, str(v))
    err.print(table)
