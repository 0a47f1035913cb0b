"""hf engine on the tiny model: generated tokens per second at batch 1, 8, 32 and 64."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

BATCHES = (1, 8, 32, 64)
MAX_TOKENS = 64  # every sequence runs the full length (EOS ignored)
PROMPT = "She bought 12 apples and sold 5. How many apples are left over? Let us compute"


def plain_generate_tokens_per_s(engine, batch: int, max_tokens: int = MAX_TOKENS, repeats: int = 3) -> float:
    """Tokens/s of plain batched generation: `batch` concurrent callers, one prompt each,
    every sequence generating exactly `max_tokens` (EOS ignored): the engine's raw speed.
    The search benchmark reports it as plain_tokens_per_s_short, for reference only (its
    efficiency is measured against a plain job on the search's own prompts). Best of
    `repeats` runs, after one warm-up, so one-off stalls on a shared machine do not count."""

    from cotgen.engines.base import GenerationParams

    async def once() -> float:
        prompts = [f"{PROMPT} {i}" for i in range(batch)]
        t0 = time.perf_counter()
        await asyncio.gather(
            *(engine.generate([p], GenerationParams(max_tokens=max_tokens, temperature=1.0, seed=i, ignore_eos=True))
              for i, p in enumerate(prompts))
        )
        return batch * max_tokens / (time.perf_counter() - t0)

    async def main() -> float:
        await once()
        return max([await once() for _ in range(repeats)])

    return asyncio.run(main())


def run(work: Path) -> dict[str, float]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from cotgen.engines.config import EngineConfig
    from cotgen.engines.hf import HFEngine
    from cotgen.models import resolve_model
    from cotgen.tiny_model import build_tiny_model

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_tiny_model(work / "tiny-cold")  # first build pays for importing torch/transformers
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model_dir = build_tiny_model(work / "tiny")
    build_s = time.perf_counter() - t0
    batches = [int(b) for b in os.environ.get("COTGEN_BENCH_BATCHES", "").split(",") if b] or BATCHES
    figures = {"tiny_model_build_s": build_s, "tiny_model_build_cold_s": cold_s}
    for batch in batches:
        engine = HFEngine(resolve_model(str(model_dir)), EngineConfig(model=str(model_dir), max_batch=max(batch, 1)))
        figures[f"engine_tokens_per_s_b{batch}"] = plain_generate_tokens_per_s(engine, batch)
        asyncio.run(engine.close())
    return figures
