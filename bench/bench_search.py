"""Search throughput on the hf engine and the tiny model: MCTS with many trees in flight
against plain batched generate at the same batch size, and against a sequential collector.

Figures:
- plain_tokens_per_s: a plain batch job on the search's own requests. A short search is
  recorded; its generate calls (each prompt with its GenerationParams) are
  replayed, B sequences at once, EOS honoured, so the same early stops happen.
- search_tokens_per_s, search_efficiency (judge value mode; target >= 0.85), and
  search_efficiency_confidence (confidence value mode), both against plain_tokens_per_s.
- sequential_tokens_per_s, speedup_vs_sequential (target >= 20): one tree at a time, one
  candidate per call, as LLaMA-O1's collector works.
- plain_tokens_per_s_stream, search_efficiency_vs_stream: the same job with 4B sequences
  queued at once, so freed slots refill (no tail of a draining batch): a stricter baseline.
- plain_tokens_per_s_b1, speedup_ceiling: the plain job run one sequence at a time, and
  plain_tokens_per_s over it: the most batching alone can buy on this model and machine.
- plain_tokens_per_s_short: short prompt, EOS ignored (the engine's raw speed, reference).
- search_mean_batch: mean rows per decode forward during the judge search.

The machine is shared: plain runs are interleaved with the search runs (plain, judge,
plain, confidence, plain, ...) and every figure is the median of its repeats, in wall time.
BENCH_QUICK=1 runs a small size for development.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

BATCH = 64  # sequences per engine batch, both for plain generate and for the search
STEP_TOKENS = 32  # max_step_tokens of the search = max_tokens of plain generate
TREES_IN_FLIGHT = 64  # concurrent trees on the one engine (full-size run)
REPEATS = 3  # interleaved rounds of (plain, judge search, plain, confidence search)


class OneAtATime:
    """LLaMA-O1's collector on our engine: every candidate is its own request, every judge
    prompt its own forward pass, and nothing runs concurrently."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.name, self.model_id = engine.name, engine.model_id

    async def generate(self, prompts, params):
        out = []
        for p in prompts:
            row = []
            for i in range(params.n):
                seed = None if params.seed is None else params.seed + i
                [[c]] = await self.engine.generate([p], replace(params, n=1, seed=seed))
                row.append(c)
            out.append(row)
        return out

    async def score(self, prompts, candidates):
        return [(await self.engine.score([p], candidates))[0] for p in prompts]

    def render_chat(self, messages, add_generation_prompt=True):
        return self.engine.render_chat(messages, add_generation_prompt)

    def has_tokens(self, tokens):
        return self.engine.has_tokens(tokens)

    async def close(self):
        pass


class Recording:
    """Passes every call through to `engine` and keeps the generate calls, one per prompt."""

    def __init__(self, engine) -> None:
        self.engine, self.calls = engine, []
        self.name, self.model_id = engine.name, engine.model_id

    async def generate(self, prompts, params):
        self.calls.extend((p, params) for p in prompts)
        return await self.engine.generate(prompts, params)

    async def score(self, prompts, candidates):
        return await self.engine.score(prompts, candidates)

    def render_chat(self, messages, add_generation_prompt=True):
        return self.engine.render_chat(messages, add_generation_prompt)

    def has_tokens(self, tokens):
        return self.engine.has_tokens(tokens)

    async def close(self):
        pass


def _plain_job(engine, calls: list, batch: int) -> float:
    """Tokens/s of the recorded generate calls replayed as one batch of `batch` sequences
    (calls spread over the whole recording, seeds varied): what a non-search batch job on
    the same prompts and settings gets from the same engine."""
    mean_n = sum(params.n for _, params in calls) / len(calls)
    stride = max(1, int(len(calls) * mean_n // batch))
    job, size = [], 0
    for prompt, params in calls[::stride] + calls:  # spread over the recording; wrap if short
        if size + params.n > batch:
            break
        job.append((prompt, replace(params, seed=1000 + len(job))))
        size += params.n

    async def main() -> float:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(engine.generate([p], params) for p, params in job))
        # Kept tokens (after stop trimming), as the search's generated_tokens counts them.
        tokens = sum(c.tokens for [comps] in results for c in comps)
        return tokens / (time.perf_counter() - t0)

    return asyncio.run(main())


def _search(engine, work: Path, trees: int, concurrency: int, search) -> dict:
    from cotgen.engines.config import EngineConfig
    from cotgen.synthesize import RunConfig, run

    shutil.rmtree(work, ignore_errors=True)
    opts = RunConfig(problems="builtin:arith", out=work, limit=trees, concurrency=concurrency,
                      shard_trees=max(trees, 1))
    return run(opts, search, EngineConfig(model="tiny"), engine=engine)


def _timed_search(engine, work: Path, trees: int, concurrency: int, search) -> tuple[float, float]:
    """(generated tokens/s of the search, mean rows per decode forward)."""
    steps0, rows0 = engine.stats.decode_steps, engine.stats.decode_rows
    t0 = time.perf_counter()
    s = _search(engine, work, trees, concurrency, search)
    tps = s.generated_tokens / (time.perf_counter() - t0)
    return tps, (engine.stats.decode_rows - rows0) / max(1, engine.stats.decode_steps - steps0)


def run(work: Path) -> dict[str, float]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench.bench_engine import plain_generate_tokens_per_s
    from cotgen.engines.config import EngineConfig
    from cotgen.engines.hf import HFEngine
    from cotgen.models import resolve_model
    from cotgen.search.config import SearchConfig
    from cotgen.tiny_model import build_tiny_model

    quick = os.environ.get("BENCH_QUICK") == "1"
    batch = 16 if quick else BATCH
    repeats = 1 if quick else REPEATS
    work.mkdir(parents=True, exist_ok=True)
    model_dir = build_tiny_model(work / "tiny")
    resolved = resolve_model(str(model_dir))
    engine = HFEngine(resolved, EngineConfig(model=str(model_dir), max_batch=batch))
    short = plain_generate_tokens_per_s(engine, batch, max_tokens=STEP_TOKENS)

    # Each tree keeps `parallel` simulations (one sequence each) in flight; twice the trees
    # needed to fill a batch keep it full while some trees wait on the judge or finish.
    judge = SearchConfig(simulations=12 if quick else 24, parallel=4, max_tokens=2 * STEP_TOKENS,
                         max_step_tokens=STEP_TOKENS, enough_correct=0)
    confidence = SearchConfig(**{**judge.to_dict(), "value_mode": "confidence"})
    per_tree = judge.parallel  # one rollout (one sequence) per simulation in flight
    # DESIGN.md's target is one engine serving >= 64 concurrent trees; that many also keeps
    # the batch full while some trees wait on the judge or finish.
    in_flight = max(1, 2 * batch // per_tree) if quick else TREES_IN_FLIGHT
    trees = in_flight

    # The plain job replays prompts of a whole search of the same size, so both see the same
    # prompt lengths (a search's prompts grow with depth).
    recorder = Recording(engine)
    _search(recorder, work / "record", trees, in_flight, judge)
    plain, stream, judge_tps, conf_tps, mean_batch = [], [], [], [], []
    for _ in range(repeats):
        plain.append(_plain_job(engine, recorder.calls, batch))
        stream.append(_plain_job(engine, recorder.calls, 4 * batch))
        tps, rows = _timed_search(engine, work / "search", trees, in_flight, judge)
        judge_tps.append(tps)
        mean_batch.append(rows)
        plain.append(_plain_job(engine, recorder.calls, batch))
        conf_tps.append(_timed_search(engine, work / "search", trees, in_flight, confidence)[0])
    plain.append(_plain_job(engine, recorder.calls, batch))
    plain_tps = statistics.median(plain)
    search_tps = statistics.median(judge_tps)

    # The ceiling of any speed-up over one-at-a-time: the same plain job, one sequence at a time.
    one = HFEngine(resolved, EngineConfig(model=str(model_dir), max_batch=1, batch_wait_ms=0.0))
    plain_b1 = statistics.median(_plain_job(one, recorder.calls, 32) for _ in range(repeats))
    asyncio.run(one.close())

    # The sequential collector: no batching window to wait in, one tree, one candidate per call.
    seq_engine = HFEngine(resolved, EngineConfig(model=str(model_dir), max_batch=1, batch_wait_ms=0.0))
    seq_search = SearchConfig(**{**judge.to_dict(), "parallel": 1, "simulations": 6 if quick else 12})
    t0 = time.perf_counter()
    q = _search(OneAtATime(seq_engine), work / "sequential", 1 if quick else 2, 1, seq_search)
    seq_tps = q.generated_tokens / (time.perf_counter() - t0)
    asyncio.run(engine.close())
    asyncio.run(seq_engine.close())
    return {
        "plain_tokens_per_s": plain_tps,
        "plain_tokens_per_s_short": short,
        "plain_tokens_per_s_stream": statistics.median(stream),
        "search_efficiency_vs_stream": search_tps / statistics.median(stream),
        "search_tokens_per_s": search_tps,
        "search_efficiency": search_tps / plain_tps,
        "search_tokens_per_s_confidence": statistics.median(conf_tps),
        "search_efficiency_confidence": statistics.median(conf_tps) / plain_tps,
        "sequential_tokens_per_s": seq_tps,
        "speedup_vs_sequential": search_tps / seq_tps,
        "plain_tokens_per_s_b1": plain_b1,
        "speedup_ceiling": plain_tps / plain_b1,
        "trees_in_flight": float(in_flight),
        "search_mean_batch": statistics.median(mean_batch),
        "search_batch_size": float(batch),
    }
