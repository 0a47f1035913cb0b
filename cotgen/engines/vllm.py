"""VLLMEngine: vLLM's AsyncLLM in-process, prefix caching on (GPU; extra cotgen[vllm]).

Written against vLLM's documented v1 API (AsyncLLM.from_engine_args, generate as an async
iterator of RequestOutput, SamplingParams with n/logprobs/seed). It cannot run on the
machines cotgen's tests run on (no GPU), so only its import and its refusals are tested.
vLLM itself batches concurrent requests (continuous batching); nothing is gathered here.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
from typing import Any

from cotgen.config import EngineConfig
from cotgen.engines.base import (
    Completion,
    EngineStats,
    GenerationParams,
    encode_prompts,
    render_chat_template,
    single_tokens,
)
from cotgen.errors import MissingExtraError, RunError, UsageError
from cotgen.models import ResolvedModel

TOP_K = 5  # alternatives reported per position
SCORE_TOP = 20  # vLLM's default max_logprobs: candidates outside it get an exact second look


def check_vllm_available() -> None:
    """Raise the user-facing error when vllm is absent or there is no GPU for it."""
    if importlib.util.find_spec("vllm") is None:
        raise MissingExtraError("vllm", "vllm", "the vllm engine")
    import torch

    if not torch.cuda.is_available():
        raise RunError(
            "the vllm engine needs a CUDA GPU and torch sees none here; "
            "use --engine hf (CPU) or --engine openai with a server on a GPU machine"
        )


class VLLMEngine:
    """vLLM's AsyncLLM. Untested here (no GPU): see the module docstring."""

    name = "vllm"

    def __init__(self, model: ResolvedModel, cfg: EngineConfig | None = None) -> None:
        check_vllm_available()
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        cfg = cfg or EngineConfig(model=model.name, engine="vllm")
        self.cfg = cfg
        self.model_id = model.model_id
        args = AsyncEngineArgs(
            model=model.load_from,
            dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code,
            enable_prefix_caching=True,  # siblings share the prompt prefix of their parent
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            max_model_len=cfg.max_model_len,
            max_num_seqs=max(cfg.max_batch, 1),
            seed=cfg.seed,
            max_logprobs=SCORE_TOP,
        )
        try:
            self._llm = AsyncLLM.from_engine_args(args)
            self.tokenizer = AutoTokenizer.from_pretrained(
                model.load_from, trust_remote_code=cfg.trust_remote_code
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise RunError(f"vllm could not start model '{model.name}' ({model.load_from}): {exc}") from None
        self.context_len = cfg.max_model_len or getattr(
            self._llm.model_config, "max_model_len", None
        ) or self.tokenizer.model_max_length
        self._ids = itertools.count()
        self.stats = EngineStats()

    async def _final(self, prompt: Any, params: Any) -> Any:
        """Run one request to completion and return its final RequestOutput."""
        final = None
        async for output in self._llm.generate(prompt, params, request_id=f"cotgen-{next(self._ids)}"):
            final = output
        return final

    def _check_len(self, prompts: list[str], room: int) -> None:
        encode_prompts(self.tokenizer, prompts, room, self.context_len, self.model_id)

    async def generate(self, prompts: list[str], **sampling: Any) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        checked = GenerationParams(**sampling)
        n, max_tokens, seed, ignore_eos = checked.n, checked.max_tokens, checked.seed, checked.ignore_eos
        self._check_len(prompts, max_tokens)
        params = SamplingParams(
            n=n,
            temperature=checked.temperature,
            top_p=checked.top_p,
            max_tokens=max_tokens,
            stop=list(checked.stop),
            seed=seed,
            logprobs=TOP_K,
            ignore_eos=ignore_eos,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        outputs = await asyncio.gather(*(self._final(p, params) for p in prompts))
        self.stats.batches += len(prompts)
        self.stats.sequences += len(prompts) * n
        result = []
        for output in outputs:
            completions = []
            for sample in sorted(output.outputs, key=lambda o: o.index):
                chosen, tops = [], []
                for token_id, position in zip(sample.token_ids, sample.logprobs or [], strict=False):
                    chosen.append(position[token_id].logprob)
                    ranked = sorted(position.values(), key=lambda lp: -lp.logprob)
                    tops.append([lp.logprob for lp in ranked[:TOP_K]])
                self.stats.generated_tokens += len(sample.token_ids)
                completions.append(
                    Completion(
                        text=sample.text,
                        tokens=len(sample.token_ids),
                        finish_reason="length" if sample.finish_reason == "length" else "stop",
                        logprobs=chosen,
                        top_logprobs=tops,
                    )
                )
            result.append(completions)
        return result

    async def score(self, prompts: list[str], candidates: list[str]) -> list[dict[str, float]]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        self._check_len(prompts, 1)
        first = {c: self.tokenizer.encode(c, add_special_tokens=False)[:1] for c in candidates}
        if any(not ids for ids in first.values()):
            raise UsageError(f"score: a candidate is empty once tokenized: {candidates}")
        params = SamplingParams(
            max_tokens=1, temperature=0.0, logprobs=SCORE_TOP, output_kind=RequestOutputKind.FINAL_ONLY
        )
        outputs = await asyncio.gather(*(self._final(p, params) for p in prompts))
        self.stats.score_batches += 1
        self.stats.scored_prompts += len(prompts)
        scored = []
        for prompt, output in zip(prompts, outputs, strict=True):
            position = output.outputs[0].logprobs[0]
            row = {}
            for c, (token_id,) in first.items():
                if token_id in position:
                    row[c] = position[token_id].logprob
                else:
                    row[c] = await self._prompt_logprob(prompt, token_id)
            scored.append(row)
        return scored

    async def _prompt_logprob(self, prompt: str, token_id: int) -> float:
        """Exact log-prob of `token_id` after `prompt`, via the prompt log-probs of prompt+token."""
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        ids = self.tokenizer.encode(prompt) + [token_id]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, output_kind=RequestOutputKind.FINAL_ONLY)
        output = await self._final(TokensPrompt(prompt_token_ids=ids), params)
        return output.prompt_logprobs[-1][token_id].logprob

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return render_chat_template(self.tokenizer, self.model_id, messages, add_generation_prompt)

    def has_tokens(self, tokens: list[str]) -> bool:
        return single_tokens(self.tokenizer, tokens)

    async def close(self) -> None:
        self._llm.shutdown()
