"""Search throughput on the hf engine and the tiny model: MCTS with many trees in flight
against plain batched generate at the same batch size, and against a sequential collector.

Figures: plain_tokens_per_s, search_tokens_per_s, search_efficiency (target >= 0.85),
sequential_tokens_per_s, speedup_vs_sequential (target >= 20), trees_in_flight.
BENCH_QUICK=1 runs a small size for development.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

BATCH = 64  # sequences per engine batch, both for plain generate and for the search
STEP_TOKENS = 32  # max_step_tokens of the search = max_tokens of plain generate


class OneAtATime:
    """LLaMA-O1's collector on our engine: every candidate is its own request, every judge
    prompt its own forward pass, and nothing runs concurrently."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.name, self.model_id = engine.name, engine.model_id

    async def generate(self, prompts, n=1, **kw):
        out = []
        for p in prompts:
            row = []
            for i in range(n):
                seed = kw.get("seed")
                [[c]] = await self.engine.generate([p], n=1, **{**kw, "seed": None if seed is None else seed + i})
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
    """Passes every call through to `engine` and keeps the generate prompts."""

    def __init__(self, engine) -> None:
        self.engine, self.prompts = engine, []
        self.name, self.model_id = engine.name, engine.model_id

    async def generate(self, prompts, n=1, **kw):
        self.prompts.extend(prompts)
        return await self.engine.generate(prompts, n=n, **kw)

    async def score(self, prompts, candidates):
        return await self.engine.score(prompts, candidates)

    def render_chat(self, messages, add_generation_prompt=True):
        return self.engine.render_chat(messages, add_generation_prompt)

    def has_tokens(self, tokens):
        return self.engine.has_tokens(tokens)

    async def close(self):
        pass


def _plain_on(engine, prompts: list[str], batch: int) -> float:
    """Plain batched generate (EOS ignored, STEP_TOKENS each) on the search's own prompts:
    separates what the search's scheduling costs from what its longer prompts cost."""

    async def main() -> float:
        sample = prompts[:: max(1, len(prompts) // batch)][:batch]
        t0 = time.perf_counter()
        await asyncio.gather(*(engine.generate([p], max_tokens=STEP_TOKENS, temperature=1.0, seed=i,
                                               ignore_eos=True) for i, p in enumerate(sample)))
        return len(sample) * STEP_TOKENS / (time.perf_counter() - t0)

    return max(asyncio.run(main()) for _ in range(2))


def _search(engine, work: Path, trees: int, concurrency: int, search) -> dict:
    from cotgen.config import EngineConfig
    from cotgen.synthesize import RunOptions, run

    shutil.rmtree(work, ignore_errors=True)
    opts = RunOptions(problems="builtin:arith", out=work, limit=trees, concurrency=concurrency,
                      shard_trees=max(trees, 1))
    return run(opts, search, EngineConfig(model="tiny"), engine=engine, quiet=True)


def run(work: Path) -> dict[str, float]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench.bench_engine import plain_generate_tokens_per_s
    from cotgen.config import EngineConfig
    from cotgen.engines.hf import HFEngine
    from cotgen.engines.tiny import build_tiny_model
    from cotgen.models import resolve_model
    from cotgen.search.config import SearchConfig

    quick = os.environ.get("BENCH_QUICK") == "1"
    batch = 16 if quick else BATCH
    work.mkdir(parents=True, exist_ok=True)
    model_dir = build_tiny_model(work / "tiny")
    resolved = resolve_model(str(model_dir))

    engine = HFEngine(resolved, EngineConfig(model=str(model_dir), max_batch=batch))
    plain = plain_generate_tokens_per_s(engine, batch, max_tokens=STEP_TOKENS)

    # Each tree keeps `parallel` simulations of `branch` sequences in flight; twice the trees
    # needed to fill a batch keep it full while some trees wait on the judge or finish.
    search = SearchConfig(simulations=12 if quick else 24, branch=4, parallel=2, max_depth=6,
                          max_step_tokens=STEP_TOKENS, enough_correct=0)
    per_tree = search.branch * search.parallel
    in_flight = max(1, 2 * batch // per_tree)
    trees = in_flight * (1 if quick else 2)
    batches0, sequences0 = engine.stats.batches, engine.stats.sequences
    t0 = time.perf_counter()
    recorder = Recording(engine)
    s = _search(recorder, work / "search", trees, in_flight, search)
    search_tps = s["generated_tokens"] / (time.perf_counter() - t0)
    mean_batch = (engine.stats.sequences - sequences0) / max(1, engine.stats.batches - batches0)
    plain_same_prompts = _plain_on(engine, recorder.prompts, batch)

    # The sequential collector: no batching window to wait in, one tree, one candidate per call.
    seq_engine = HFEngine(resolved, EngineConfig(model=str(model_dir), max_batch=1, batch_wait_ms=0.0))
    seq_search = SearchConfig(**{**search.to_dict(), "parallel": 1, "simulations": 6 if quick else 12})
    t0 = time.perf_counter()
    q = _search(OneAtATime(seq_engine), work / "sequential", 1 if quick else 2, 1, seq_search)
    seq_tps = q["generated_tokens"] / (time.perf_counter() - t0)
    asyncio.run(engine.close())
    asyncio.run(seq_engine.close())
    return {
        "plain_tokens_per_s": plain,
        "search_tokens_per_s": search_tps,
        "search_efficiency": search_tps / plain,
        "sequential_tokens_per_s": seq_tps,
        "speedup_vs_sequential": search_tps / seq_tps,
        "trees_in_flight": float(in_flight),
        "search_mean_batch": mean_batch,
        "plain_tokens_per_s_search_prompts": plain_same_prompts,
        "search_efficiency_search_prompts": search_tps / plain_same_prompts,
        "search_batch_size": float(batch),
    }
