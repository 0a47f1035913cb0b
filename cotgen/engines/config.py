"""Settings records: frozen dataclasses checked when built, recorded as-is in manifest.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cotgen.search.config import refuse_non_finite

ENGINES = ("hf", "vllm", "openai", "chat")
CONTINUATIONS = ("auto", "prefill", "prefix", "restate")  # chat engine: how a partial answer is continued
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True)
class EngineConfig:
    """Which model to run, on which engine, and how the engine batches requests."""

    model: str = "tiny"  # alias (qwen2.5-7b), "tiny", a local folder or a Hub id
    engine: str = "hf"  # hf (transformers in-process) | vllm (in-process, GPU) | openai (a server) | chat (a chat API)
    device: str = "auto"  # auto = cuda when available, else cpu (hf engine)
    dtype: str = "auto"  # auto = bfloat16 on cuda, float32 on cpu (hf); vllm picks its own
    trust_remote_code: bool = False  # never run a model repo's own Python unless asked
    max_batch: int = 64  # most sequences (prompts x n) decoded together
    batch_wait_ms: float = 5.0  # how long an idle engine waits for company before it starts
    # hf on CPU: torch threads. 0 = one thread for models under 50M parameters (their
    # per-op overhead dwarfs the math, and thread hand-offs made the tiny model 10x slower
    # on a busy 2-core machine), torch's default above that.
    cpu_threads: int = 0
    max_model_len: int | None = None  # context length; None = the model's own limit
    base_url: str = "http://127.0.0.1:8000/v1"  # openai engine: the server, up to /v1
    api_key: str | None = None  # openai engine: bearer token; None = $OPENAI_API_KEY if set
    request_timeout_s: float = 600.0  # openai engine: one HTTP request, generous for long batches
    # chat engine (engines/chat.py). The key itself is never a setting: only the name of
    # the environment variable that holds it (None = COTGEN_API_KEY, then OPENAI_API_KEY).
    api_key_env: str | None = None
    continuation: str = "auto"  # auto (probed at start) | prefill (vLLM) | prefix (DeepSeek) | restate
    max_requests: int = 16  # requests in flight at once
    price_in: float | None = None  # USD per 1M prompt tokens
    price_out: float | None = None  # USD per 1M completion tokens
    max_cost: float | None = None  # USD: the run stops (finished trees saved) once it has spent this
    gpu_memory_utilization: float = 0.9  # vllm: fraction of GPU memory for weights + KV cache
    # vllm with --value prm: the PRM's fraction of GPU memory, taken out of gpu_memory_utilization's
    # (the two models share the device; 0 = no PRM on vllm)
    prm_gpu_memory_utilization: float = 0.0
    seed: int = 0  # seeds the engine's own RNG, used by calls that pass no seed of their own

    def __post_init__(self) -> None:
        refuse_non_finite(self)
        if not self.model or not self.model.strip():
            raise ValueError("model must not be empty")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not '{self.engine}'")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be one of {', '.join(DEVICES)} or cuda:N, not '{self.device}'")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not '{self.dtype}'")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {self.max_batch}")
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be >= 0, not {self.batch_wait_ms}")
        if self.cpu_threads < 0:
            raise ValueError(f"cpu_threads must be >= 0, not {self.cpu_threads}")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"max_model_len must be >= 2, not {self.max_model_len}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not '{self.base_url}'")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0, not {self.request_timeout_s}")
        if self.continuation not in CONTINUATIONS:
            raise ValueError(f"continuation must be one of {', '.join(CONTINUATIONS)}, not '{self.continuation}'")
        if self.max_requests < 1:
            raise ValueError(f"max_requests must be >= 1, not {self.max_requests}")
        for name in ("price_in", "price_out", "max_cost"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        if self.max_cost is not None and (self.price_in is None or self.price_out is None):
            # one price missing would count its tokens as free and let the spend pass the cap
            raise ValueError("max_cost needs both prices: give --price-in and --price-out (USD per 1M tokens)")
        if self.api_key_env is not None and not self.api_key_env.strip():
            raise ValueError("api_key_env must name an environment variable")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], not {self.gpu_memory_utilization}")

        if not 0.0 <= self.prm_gpu_memory_utilization < self.gpu_memory_utilization:
            raise ValueError(
                f"prm_gpu_memory_utilization must be in [0, gpu_memory_utilization={self.gpu_memory_utilization}), "
                f"not {self.prm_gpu_memory_utilization}"
            )

    def to_dict(self) -> dict[str, Any]:
        """For manifest.json: every field except the secret."""
        d = asdict(self)
        d["api_key"] = None if self.api_key is None else "***"
        return d
