"""Engines: one async interface (base.py), built by name; each backend is imported only when built."""

from __future__ import annotations

from dataclasses import dataclass

from cotgen.config import EngineConfig
from cotgen.engines.base import Completion, Engine

__all__ = ["Completion", "Engine", "EngineConfig", "EngineStats", "build_engine"]


@dataclass
class EngineStats:
    """Counters every engine keeps as `engine.stats`; the progress bar and benchmarks read them."""

    generated_tokens: int = 0  # every token the model produced, incl. trimmed ones and EOS
    batches: int = 0  # hf: admission rounds (one prefill each); vllm/openai: generate requests sent
    sequences: int = 0  # sequences admitted over all those rounds (prompts x n)
    score_batches: int = 0  # hf: score forward passes; vllm/openai: score calls
    scored_prompts: int = 0
    busy_seconds: float = 0.0  # hf: wall time inside generate/forward; others: in requests
    decode_steps: int = 0  # hf: forward passes of the decode loop (one token per active row)
    decode_rows: int = 0  # hf: active rows summed over those passes
    prompt_tokens: int = 0  # vllm: prompt tokens of every request sent
    cached_prompt_tokens: int = 0  # vllm: of those, served from the prefix cache (num_cached_tokens)

    @property
    def mean_batch_size(self) -> float:
        """Sequences per admission round (hf) or per request (others)."""
        return self.sequences / self.batches if self.batches else 0.0

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        """Share of prompt tokens served from the prefix cache; None where not measured."""
        return self.cached_prompt_tokens / self.prompt_tokens if self.prompt_tokens else None

    @property
    def mean_active_rows(self) -> float:
        """How full the hf engine's decode batch was, on average."""
        return self.decode_rows / self.decode_steps if self.decode_steps else 0.0


def build_engine(cfg: EngineConfig) -> Engine:
    """The engine `cfg` asks for, with its model resolved and loaded.

    Raises RunError / MissingExtraError with one message naming what was tried.
    """
    if cfg.engine == "openai":
        # The server owns the model: only map an alias to the id servers are started with.
        from cotgen.engines.openai import OpenAIEngine

        return OpenAIEngine(cfg)
    if cfg.engine == "vllm":
        from cotgen.engines.vllm import VLLMEngine, check_vllm_available

        check_vllm_available()  # before resolving: no point finding a model vllm cannot run
        from cotgen.models import resolve_model

        return VLLMEngine(resolve_model(cfg.model), cfg)
    from cotgen.engines.hf import HFEngine
    from cotgen.models import resolve_model

    return HFEngine(resolve_model(cfg.model), cfg)
