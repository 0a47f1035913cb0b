"""`cotgen synthesize`: search trees for a set of problems and write them as tree shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cotgen.cli.app import app, emit_json, err
from cotgen.cli.options import JsonFlag, OutDir, QuietFlag
from cotgen.config import EngineConfig
from cotgen.errors import UsageError
from cotgen.executors.ray_cluster import RayOptions
from cotgen.search.config import SearchConfig
from cotgen.synthesize import RunOptions, run

_S = SearchConfig()  # the defaults live in the dataclasses, shown here in --help
_E = EngineConfig()
_R = RunOptions(problems="", out=Path("."))
_RAY = RayOptions()
EXECUTORS = ("local", "ray")


@app.command()
def synthesize(
    problems: Annotated[str, typer.Option("--problems", "-p", help="A .jsonl/.json/.parquet file, a dataset id (gsm8k, math500), or builtin:arith / builtin:letters.")],
    out_dir: OutDir,
    model: Annotated[str, typer.Option(help="qwen2.5-7b (and other sizes), tiny, a local folder or a Hub id.")] = _E.model,
    engine: Annotated[str, typer.Option(help="hf | vllm | openai")] = _E.engine,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N | mps")] = _E.device,
    dtype: Annotated[str, typer.Option(help="auto | float32 | float16 | bfloat16")] = _E.dtype,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow a model repo's own Python code.")] = False,
    max_batch: Annotated[int, typer.Option(help="Most sequences in one engine batch.")] = _E.max_batch,
    base_url: Annotated[str, typer.Option(help="openai engine: the server's URL up to /v1.")] = _E.base_url,
    split: Annotated[str, typer.Option(help="Dataset split.")] = _R.split,
    question_field: Annotated[str | None, typer.Option(help="Column holding the question.")] = None,
    answer_field: Annotated[str | None, typer.Option(help="Column holding the gold answer.")] = None,
    limit: Annotated[int | None, typer.Option(help="Take at most this many problems.")] = None,
    skip: Annotated[int, typer.Option(help="Pass over this many problems first.")] = 0,
    problem_seed: Annotated[int, typer.Option(help="Seed of builtin problem generators.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Trees in flight at once on the one engine.")] = _R.concurrency,
    shard_trees: Annotated[int, typer.Option(help="Finished trees per shard.")] = _R.shard_trees,
    prompts: Annotated[Path | None, typer.Option(help="A folder of prompt templates replacing the packaged ones.")] = None,
    hint_answer: Annotated[bool, typer.Option("--hint-answer", help="Show the gold answer to the policy (LLaMA-O1's hint).")] = False,
    simulations: Annotated[int, typer.Option(help="Simulations per tree.")] = _S.simulations,
    branch: Annotated[int, typer.Option(help="Children per expansion (one request with n = branch).")] = _S.branch,
    max_depth: Annotated[int, typer.Option(help="Deepest node; the level above it concludes.")] = _S.max_depth,
    enough_correct: Annotated[int, typer.Option(help="Stop a tree once this many leaves are correct; 0 = never.")] = _S.enough_correct,
    c_puct: Annotated[float, typer.Option(help="PUCT exploration weight.")] = _S.c_puct,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = _S.temperature,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling.")] = _S.top_p,
    max_step_tokens: Annotated[int, typer.Option(help="Token cap of one step, critic, refine or conclusion.")] = _S.max_step_tokens,
    critic_rate: Annotated[float, typer.Option(help="Chance that expanding a step criticizes it.")] = _S.critic_rate,
    conclude_rate: Annotated[float, typer.Option(help="Chance that expanding a step concludes early.")] = _S.conclude_rate,
    refine: Annotated[bool, typer.Option("--refine/--no-refine", help="Give critics refine children.")] = _S.refine,
    value: Annotated[str, typer.Option(help="judge | confidence | rollout")] = _S.value,
    rollouts: Annotated[int, typer.Option(help="rollout value: completions per node.")] = _S.rollouts,
    rollout_tokens: Annotated[int, typer.Option(help="rollout value: token cap of one completion.")] = _S.rollout_tokens,
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
            simulations=simulations, branch=branch, max_depth=max_depth, enough_correct=enough_correct,
            c_puct=c_puct, temperature=temperature, top_p=top_p, max_step_tokens=max_step_tokens,
            critic_rate=critic_rate, conclude_rate=conclude_rate, refine=refine, value=value, rollouts=rollouts,
            rollout_tokens=rollout_tokens, virtual_loss=virtual_loss, parallel=parallel, seed=seed,
        )
        engine_cfg = EngineConfig(
            model=model, engine=engine, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
            max_batch=max_batch, base_url=base_url, seed=seed,
        )
        opts = RunOptions(
            problems=problems, out=out_dir, split=split, question_field=question_field,
            answer_field=answer_field, limit=limit, skip=skip, problem_seed=problem_seed,
            concurrency=concurrency, shard_trees=shard_trees, prompts=prompts, hint_answer=hint_answer,
        )
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, not '{executor}'")
        ray = None
        if executor == "ray":
            ray = RayOptions(workers=workers, address=ray_address, gpus_per_worker=gpus_per_worker,
                             cpus_per_worker=cpus_per_worker, worker_restarts=worker_restarts)
        elif ray_address is not None:
            raise ValueError("--ray-address needs --executor ray")
    except ValueError as exc:
        raise UsageError(f"synthesize: {exc}") from None
    summary = run(opts, search, engine_cfg, console=err, quiet=quiet, ray=ray)
    if json_out:
        emit_json(summary, sort_keys=True)
