"""Loading a transformers model and tokenizer for the hf engine, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cotgen.engines.config import EngineConfig
from cotgen.errors import RunError
from cotgen.models import ResolvedModel

SMALL_MODEL_PARAMS = 50_000_000  # below this, one CPU thread beats several (EngineConfig.cpu_threads)


@dataclass
class LoadedModel:
    model: Any  # the causal LM, on its device, in eval mode
    tokenizer: Any  # left-padding, with a pad token
    device: str
    pad_id: int
    eos_ids: set[int]
    context_len: int  # the model's window, or EngineConfig.max_model_len when smaller


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RunError(f"--device {device} was asked for, but torch sees no CUDA GPU here")
    if device == "mps" and not torch.backends.mps.is_available():
        raise RunError("--device mps was asked for, but torch sees no MPS device here")
    return device


def pick_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_model(model: ResolvedModel, cfg: EngineConfig) -> LoadedModel:
    """The model and tokenizer `model` names, on the device `cfg` asks for."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    device = pick_device(cfg.device)
    source = model.load_from
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
        lm = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=pick_dtype(cfg.dtype, device),
            trust_remote_code=cfg.trust_remote_code,
        )
    except (OSError, ValueError, ImportError) as exc:
        hint = ""
        if "trust_remote_code" in str(exc) and not cfg.trust_remote_code:
            hint = " (this model ships its own code: pass --trust-remote-code if you trust it)"
        raise RunError(f"cannot load model '{model.name}' from {source}: {exc}{hint}") from None
    lm.to(device).eval()
    if device == "cpu":
        small = sum(p.numel() for p in lm.parameters()) < SMALL_MODEL_PARAMS
        threads = cfg.cpu_threads or (1 if small else 0)
        if threads:
            torch.set_num_threads(threads)  # process-wide: the engine owns the CPU
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    eos = lm.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    model_len = getattr(lm.config, "max_position_embeddings", None) or 2048
    return LoadedModel(
        model=lm,
        tokenizer=tokenizer,
        device=device,
        pad_id=tokenizer.pad_token_id,
        eos_ids=set(eos if isinstance(eos, list) else [eos]) - {None},
        context_len=min(cfg.max_model_len or model_len, model_len),
    )
