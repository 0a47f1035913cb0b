"""Engines: one async interface (base.py), built by name; each backend is imported only when built."""

from __future__ import annotations

from cotgen.engines.base import Completion, Engine, EngineStats, GenerationParams
from cotgen.engines.config import EngineConfig

__all__ = ["Completion", "Engine", "EngineConfig", "EngineStats", "GenerationParams", "build_engine"]


def build_engine(cfg: EngineConfig) -> Engine:
    """The engine `cfg` asks for, with its model resolved and loaded.

    Raises RunError / MissingExtraError with one message naming what was tried.
    """
    if cfg.engine == "openai":
        # The server owns the model: only map an alias to the id servers are started with.
        from cotgen.engines.openai import OpenAIEngine

        return OpenAIEngine(cfg)
    if cfg.engine == "chat":
        # A hosted or OpenAI-compatible chat endpoint; probed once here (key, log-probs, continuation).
        from cotgen.engines.chat import ChatEngine

        return ChatEngine(cfg)
    if cfg.engine == "vllm":
        from cotgen.engines.vllm import VLLMEngine, check_vllm_available

        check_vllm_available()  # before resolving: no point finding a model vllm cannot run
        from cotgen.models import resolve_model

        return VLLMEngine(resolve_model(cfg.model), cfg)
    from cotgen.engines.hf import HFEngine
    from cotgen.models import resolve_model

    return HFEngine(resolve_model(cfg.model), cfg)
