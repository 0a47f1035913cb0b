"""The engine request record and the Engine protocol every backend fills."""

from __future__ import annotations

import pytest

from cotgen.engines.base import Engine, EngineStats, GenerationParams


def test_generation_params_are_checked_and_normalised_once():
    p = GenerationParams(n=2, max_tokens=8, temperature=0, top_p=0.5, stop=["\n\n", "", "\n\n", "</s>"])
    assert (p.temperature, p.top_p, p.stop) == (0.0, 1.0, ("\n\n", "</s>"))
    assert GenerationParams(temperature=1, top_p=0.5).top_p == 0.5
    for bad in ({"n": 0}, {"max_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}):
        with pytest.raises(ValueError, match="generate needs"):
            GenerationParams(**bad)
    with pytest.raises(ValueError, match="not one string"):
        GenerationParams(stop="\n\n")


def test_engine_stats_have_room_for_prefix_cache_figures():
    stats = EngineStats()
    assert (stats.prompt_tokens, stats.cached_prompt_tokens, stats.mean_batch_size) == (0, 0, 0.0)


def test_every_engine_fills_the_protocol():
    import inspect

    from cotgen.engines.hf import HFEngine
    from cotgen.engines.openai import OpenAIEngine
    from cotgen.engines.vllm import VLLMEngine  # vllm itself is imported only when one is built

    # Sampling settings travel as one GenerationParams, never as keywords.
    assert list(inspect.signature(Engine.generate).parameters) == ["self", "prompts", "params"]
    for cls in (HFEngine, OpenAIEngine, VLLMEngine):
        assert inspect.signature(cls.generate) == inspect.signature(Engine.generate), cls
        for name in ("score", "render_chat", "has_tokens", "close"):
            assert callable(getattr(cls, name)), (cls, name)


def test_fit_context_lowers_max_tokens_to_the_room_the_prompt_leaves():
    from cotgen.engines.base import MIN_FIT_ROOM, encode_prompts, fitted_max_tokens
    from cotgen.errors import DataError

    class Words:  # one token per word
        def encode(self, text):
            return text.split()

    tok, ctx = Words(), 100
    prompt = " ".join(["w"] * 60)
    with pytest.raises(DataError, match="exceeds the context"):
        encode_prompts(tok, [prompt], 2048, ctx, "m")  # a fixed max_tokens is refused
    [ids] = encode_prompts(tok, [prompt], 2048, ctx, "m", fit=True)
    params = GenerationParams(max_tokens=2048, fit_context=True)
    assert fitted_max_tokens(params, ids, ctx) == 40  # the room left, not 2048
    assert fitted_max_tokens(GenerationParams(max_tokens=30, fit_context=True), ids, ctx) == 30
    assert fitted_max_tokens(GenerationParams(max_tokens=30), ids, ctx) == 30
    with pytest.raises(DataError):  # a prompt that leaves almost no room still fails alone
        encode_prompts(tok, [" ".join(["w"] * (ctx - MIN_FIT_ROOM + 1))], 2048, ctx, "m", fit=True)
