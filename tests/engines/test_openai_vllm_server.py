"""The openai engine against a real vLLM OpenAI-compatible server (vLLM's CPU build) started
on a free 127.0.0.1 port: the engine contract, every judge scoring method, a synthesize run
through the CLI, and the server going away. One server serves the module.

Run with `make test-vllm` (.venv-vllm); skipped where vLLM is not installed.
"""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("vllm", reason="needs vLLM (CPU build: make vllm-env; run with make test-vllm)")

from contract import CANDIDATES, CONTEXT, PROMPTS, TOLERANCE_NATS, EngineContract  # noqa: E402
from vllm_fixtures import VLLMServer  # noqa: E402

from cotgen.engines import build_engine  # noqa: E402
from cotgen.engines.base import GenerationParams  # noqa: E402
from cotgen.engines.config import EngineConfig  # noqa: E402
from cotgen.errors import EngineFailed  # noqa: E402
from cotgen.io.layout import read_manifest  # noqa: E402
from cotgen.io.trees import iter_input_trees as iter_trees  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    s = VLLMServer(tiny_model_dir, tmp_path_factory.mktemp("vllm-server") / "server.log", CONTEXT)
    try:
        s.wait_healthy()
        yield s
    finally:
        left = s.stop()
        assert not left, f"processes of the server's group still alive: {left}"


def openai_engine(server, model):
    return build_engine(EngineConfig(engine="openai", model=str(model), base_url=server.url, max_model_len=CONTEXT))


@pytest.fixture(scope="module")
def engine(server, tiny_model_dir):
    eng = openai_engine(server, tiny_model_dir)
    yield eng
    asyncio.run(eng.close())


class TestOpenAIEngineOnVLLMServer(EngineContract):
    pass


def test_vllm_extensions_are_used(engine):
    [[c]] = asyncio.run(engine.generate(PROMPTS[:1], GenerationParams(max_tokens=8, temperature=0)))
    assert engine.extras is True and len(c.token_ids) == c.tokens
    asyncio.run(engine.score(PROMPTS[:1], CANDIDATES))
    assert engine.score_method == "token_ids"


@pytest.mark.parametrize("method", ["token_ids", "prompt_logprobs", "top_logprobs"])
def test_every_scoring_method_agrees_with_hf(server, tiny_model_dir, hf, method):
    eng = openai_engine(server, tiny_model_dir)
    eng.score_method = method
    rows = asyncio.run(eng.score(PROMPTS, CANDIDATES))
    ref = asyncio.run(hf.score(PROMPTS, CANDIDATES))
    scored = 0
    for row, expected in zip(rows, ref, strict=True):
        for c in CANDIDATES:
            if method == "top_logprobs" and row[c] == float("-inf"):
                continue  # outside the top 20 (or split differently by text): the old path's limit
            assert abs(row[c] - expected[c]) < TOLERANCE_NATS, (method, c, row[c], expected[c])
            scored += 1
    assert scored == len(PROMPTS) * len(CANDIDATES) or method == "top_logprobs"
    assert eng.score_method == method
    asyncio.run(eng.close())


def test_prefix_cache_figures_from_the_server(engine):
    head = "She bought 12 apples and sold 5. How many apples are left over? " * 8
    before = engine.stats.cached_prompt_tokens
    asyncio.run(engine.generate([head + "First"], GenerationParams(max_tokens=4, temperature=0)))
    asyncio.run(engine.generate([head + "Then"], GenerationParams(max_tokens=4, temperature=0)))
    assert engine.stats.cached_prompt_tokens > before
    assert engine.stats.prefix_cache_hit_rate is not None


def test_synthesize_with_the_openai_engine(server, tiny_model_dir, tmp_path, cli):
    out = tmp_path / "run"
    r = cli("synthesize", "--engine", "openai", "--base-url", server.url, "--model", tiny_model_dir,
            "--problems", "builtin:arith", "--limit", "4", "--out", out, "--json", "--quiet",
            "--simulations", "6", "--branch", "2", "--max-depth", "5", "--max-step-tokens", "12", "--max-tokens", "24",
            "--critics", "1", "--concurrency", "4", "--parallel", "2", "--shard-trees", "2", "--seed", "3")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["trees"] == 4 and summary["failed"] == 0
    trees = list(iter_trees([out]))
    assert len({t.id for t in trees}) == 4
    for t in trees:
        t.check()
        # Every simulation rolled out to the token limit (a random model); the judge's scores
        # are checked against hf in test_every_scoring_method_agrees_with_hf.
        assert t.error is None and t.root.visits == t.stats.simulations == 6
    assert read_manifest(out)["counts"] == {"trees": 4, "failed": 0}
    # openlongcot and prm make rows from every finished tree; dpo needs two siblings whose
    # values differ, which a random model's scores (batch-dependent on CPU) may not give.
    for fmt, extra in (("openlongcot", []), ("prm", ["--paths", "all"])):  # no answers: every path
        r = cli("export", out, "--format", fmt, *extra, "--out", tmp_path / fmt, "--quiet")
        assert r.code == 0, r.err
        r = cli("validate", tmp_path / fmt)
        assert r.code == 0, r.out + r.err


def test_the_server_going_away_is_engine_failed(server, tiny_model_dir, monkeypatch):
    from cotgen.engines import openai

    monkeypatch.setattr(openai, "RETRY_BACKOFF_S", 0.0)
    eng = openai_engine(server, tiny_model_dir)
    assert asyncio.run(eng.generate(PROMPTS[:1], GenerationParams(max_tokens=2)))[0][0].tokens > 0
    assert not server.stop()  # every process of its group is gone
    with pytest.raises(EngineFailed, match="cannot get completions"):
        asyncio.run(eng.generate(PROMPTS[:1], GenerationParams(max_tokens=2)))
    asyncio.run(eng.close())
