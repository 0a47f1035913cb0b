"""The chat engine against a real vLLM server's /v1/chat/completions (vLLM's CPU build,
the tiny model), started as the openai engine's tests start one: the probe finds vLLM's
prefill, a partial solution is continued inside the assistant's turn (the same greedy text
as /v1/completions on the rendered prompt), usage is the server's, the judge scores, and a
synthesize run writes valid trees with their cost.

Run with `make test-vllm` (.venv-vllm); skipped where vLLM is not installed.
"""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("vllm", reason="needs vLLM (CPU build: make vllm-env; run with make test-vllm)")

from contract import CONTEXT  # noqa: E402
from vllm_fixtures import VLLMServer  # noqa: E402

from cotgen.engines import GenerationParams, build_engine  # noqa: E402
from cotgen.engines.config import EngineConfig  # noqa: E402
from cotgen.io.trees import iter_input_trees  # noqa: E402
from cotgen.io.writers import read_manifest  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

MESSAGES = [{"role": "system", "content": "You solve maths problems step by step."},
            {"role": "user", "content": "What is 12 + 30?"}]
PARTIAL = "First, 12 + 30 means adding tens.\n\n"


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    s = VLLMServer(tiny_model_dir, tmp_path_factory.mktemp("vllm-chat-server") / "server.log", CONTEXT)
    try:
        s.wait_healthy()
        yield s
    finally:
        left = s.stop()
        assert not left, f"processes of the server's group still alive: {left}"


@pytest.fixture(scope="module")
def chat(server, tiny_model_dir):
    return build_engine(EngineConfig(engine="chat", model=str(tiny_model_dir), base_url=server.url,
                                     price_in=1.0, price_out=2.0))


def test_probe_finds_prefill_and_logprobs(chat):
    assert chat.continuation == "prefill" and chat.logprobs is True


def test_a_partial_solution_is_continued_in_the_assistant_turn(chat, server, tiny_model_dir):
    """Greedy, the chat engine's continuation is the completions endpoint's on the prompt
    the chat template renders with the partial answer: the turn was left open."""
    openai = build_engine(EngineConfig(engine="openai", model=str(tiny_model_dir), base_url=server.url,
                                       max_model_len=CONTEXT))
    rendered = openai.render_chat(MESSAGES) + PARTIAL
    [[reference]] = asyncio.run(openai.generate([rendered], GenerationParams(max_tokens=12, temperature=0)))
    before = chat.usage.prompt_tokens
    [[c]] = asyncio.run(chat.generate([chat.render_chat(MESSAGES) + PARTIAL], GenerationParams(max_tokens=12, temperature=0)))
    # The server counted exactly the rendered prompt's tokens: no closed turn, no new header.
    assert chat.usage.prompt_tokens - before == len(openai._tok().encode(rendered))
    assert c.prompt_tokens == len(openai._tok().encode(rendered))
    assert c.tokens == reference.tokens
    assert c.logprobs == pytest.approx(reference.logprobs, abs=1e-3)
    # The chat endpoint skips special tokens in the text (vLLM's default there).
    assert c.text == openai._tok().decode(reference.token_ids, skip_special_tokens=True)
    asyncio.run(openai.close())


def test_samples_logprobs_and_judge(chat):
    [row] = asyncio.run(chat.generate([chat.render_chat(MESSAGES)], GenerationParams(n=3, max_tokens=8, temperature=1.0, seed=3)))
    assert len(row) == 3 and all(c.tokens > 0 and len(c.top_logprobs[0]) == 5 for c in row)
    [scores] = asyncio.run(chat.score([chat.render_chat(MESSAGES)], ["Yes", "No"]))
    assert set(scores) == {"Yes", "No"}
    assert chat.api_usage()["cost_usd"] == pytest.approx(
        (chat.usage.prompt_tokens * 1.0 + chat.usage.completion_tokens * 2.0) / 1e6, abs=1e-6)


def test_synthesize_with_the_chat_engine(server, tiny_model_dir, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("COTGEN_API_KEY", "sk-vllm-chat-test-key-4411")  # vLLM takes any key when it wants none
    out = tmp_path / "run"
    r = cli("synthesize", "--engine", "chat", "--base-url", server.url, "--model", tiny_model_dir,
            "--problems", "builtin:arith", "--limit", "3", "--out", out, "--json", "--quiet",
            "--simulations", "4", "--max-depth", "4", "--max-step-tokens", "12", "--max-tokens", "24",
            "--critics", "1", "--concurrency", "3", "--price-in", "0.5", "--price-out", "1.5")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["trees"] == 3 and summary["failed"] == 0
    assert summary["api"]["continuation"] == "prefill" and summary["cost_usd"] > 0
    for t in iter_input_trees([out]):
        t.check()
        assert t.error is None and t.stats.prompt_tokens > 0
    assert read_manifest(out)["last_run"]["cost_usd"] == summary["cost_usd"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"sk-vllm-chat-test-key-4411" not in path.read_bytes()
