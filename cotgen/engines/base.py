"""The one async interface every engine implements, and its result records."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cotgen.errors import DataError, RunError, UsageError, first_line


@dataclass
class Completion:
    """One sampled continuation of a prompt."""

    text: str  # stop strings already trimmed
    tokens: int  # generated tokens (after trimming)
    finish_reason: str  # "stop" (EOS or a stop string) | "length" (max_tokens reached)
    logprobs: list[float] = field(default_factory=list)  # log-prob of each generated token
    # Top-5 log-probs at each generated position, highest first (the chosen token may or
    # may not be among them). Marco-o1's confidence value reads these.
    top_logprobs: list[list[float]] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)  # the kept tokens, where the engine knows them
    prompt_tokens: int = 0  # tokens of the prompt it continued (0 where the engine does not say)

    @property
    def mean_logprob(self) -> float | None:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else None


@dataclass(frozen=True)
class GenerationParams:
    """How one generate call samples: checked and normalised once, here, for every engine
    (vLLM's SamplingParams is the model)."""

    n: int = 1  # completions per prompt
    max_tokens: int = 256  # generated tokens per completion at most
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 1.0  # nucleus mass in (0, 1]; 1.0 under greedy, where it cannot matter
    stop: tuple[str, ...] = ()  # stop strings, each trimmed off with what follows; sorted, unique
    seed: int | None = None  # None = the engine's own rng picks one
    ignore_eos: bool = False  # every completion runs to max_tokens (benchmarks)
    # max_tokens is a ceiling: an engine that knows the model's context lowers it to the
    # room each prompt leaves there (a rollout to the end of a solution), instead of refusing.
    fit_context: bool = False

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_tokens < 1:
            raise ValueError(f"generate needs n >= 1 and max_tokens >= 1 (got n={self.n}, max_tokens={self.max_tokens})")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                f"generate needs temperature >= 0 and 0 < top_p <= 1 (got {self.temperature}, {self.top_p})"
            )
        if isinstance(self.stop, str):
            raise ValueError("stop must be a list of strings, not one string")
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p) if self.temperature > 0 else 1.0)
        object.__setattr__(self, "stop", tuple(sorted({s for s in self.stop or () if s})))


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
    prompt_tokens: int = 0  # prompt tokens of admitted sequences, where the engine counts them
    cached_prompt_tokens: int = 0  # of those, tokens a prefix cache served (0 without one)
    prefix_cache: bool = False  # the engine measures prefix-cache hits (vllm; openai when the server says)

    @property
    def mean_batch_size(self) -> float:
        """Sequences per admission round (hf) or per request (others)."""
        return self.sequences / self.batches if self.batches else 0.0

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        """Share of prompt tokens served from the prefix cache; None where not measured."""
        return self.cached_prompt_tokens / self.prompt_tokens if self.prefix_cache and self.prompt_tokens else None


@runtime_checkable
class Engine(Protocol):
    """An LLM behind one async interface. All trees of a run share one instance, so an
    implementation gathers concurrent calls into batches."""

    name: str  # "hf" | "vllm" | "openai"
    model_id: str  # what was loaded: an alias resolved to a Hub id, or a folder
    stats: EngineStats  # counters since the engine was built

    async def generate(self, prompts: list[str], params: GenerationParams) -> list[list[Completion]]:
        """`params.n` completions per prompt; result[i] belongs to prompts[i]. `params` was
        checked when it was built (a caller builds its requests once and varies n and the
        seed with dataclasses.replace, as vLLM's callers pass one SamplingParams). A prompt
        that cannot be served (longer than the context) raises for that call only."""
        ...

    async def score(self, prompts: list[str], candidates: list[str]) -> list[dict[str, float]]:
        """For each prompt, the log-prob of each candidate as the next token
        (a candidate that is several tokens is scored by its first token)."""
        ...

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The model's chat template applied to `messages`, as prompt text."""
        ...

    def has_tokens(self, tokens: list[str]) -> bool:
        """True when every string in `tokens` is a single token of the vocabulary."""
        ...

    async def close(self) -> None: ...


# Engines that hold a transformers tokenizer share these (hf and vllm in-process; openai
# renders chat locally with the model's tokenizer, since its server only does completions).


def render_chat_template(tokenizer: Any, model_id: str, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise RunError(f"model '{model_id}' has no chat template; use a chat/instruct model")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def single_tokens(tokenizer: Any, tokens: list[str]) -> bool:
    return all(len(tokenizer.encode(t, add_special_tokens=False)) == 1 for t in tokens)


def check_request(prompts: list[str], params: GenerationParams) -> None:
    """The arguments of a generate call, checked the same way by every engine: sampling
    settings come as one GenerationParams, never as keywords or a dict."""
    check_prompts(prompts)
    if not isinstance(params, GenerationParams):
        raise TypeError(
            f"generate takes its sampling settings as a GenerationParams, not a {type(params).__name__}"
        )


def check_prompts(prompts: list[str]) -> None:
    if isinstance(prompts, str):
        raise UsageError("prompts must be a list of strings, not one string")


MIN_FIT_ROOM = 16  # with fit_context, a prompt must still leave this many tokens to generate


def encode_prompts(tokenizer: Any, prompts: list[str], room: int, context_len: int, model_id: str,
                   fit: bool = False) -> list[list[int]]:
    """Token ids per prompt; refuses the whole call if one prompt is empty or leaves fewer
    than `room` tokens of the context (so it fails alone, before it joins a batch). With
    `fit`, `room` is a ceiling and a prompt need only leave MIN_FIT_ROOM tokens."""
    if fit:
        room = min(room, MIN_FIT_ROOM)
    check_prompts(prompts)
    encoded = []
    for i, prompt in enumerate(prompts):
        ids = _token_ids(tokenizer, prompt, i)
        if not ids:
            raise DataError(f"prompt {i} of this call is empty once tokenized")
        if len(ids) + room > context_len:
            raise DataError(
                f"prompt {i} of this call is {len(ids)} tokens; with {room} tokens to generate "
                f"it exceeds the context of {context_len} tokens of '{model_id}'"
            )
        encoded.append(ids)
    return encoded


def _token_ids(tokenizer: Any, prompt: str, i: int) -> list[int]:
    """The prompt's token ids. A prompt the tokenizer cannot take (a lone surrogate, which
    UTF-8 cannot encode; not a string) is a DataError of this call, so the request fails
    alone (its tree's error), never the engine."""
    if not isinstance(prompt, str):
        raise DataError(f"prompt {i} of this call is {type(prompt).__name__}, not text")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(f"prompt {i} of this call holds {exc.object[exc.start:exc.end]!r} at char {exc.start}, "
                        "which UTF-8 cannot encode (a lone surrogate)") from None
    try:
        return tokenizer.encode(prompt)
    except (TypeError, ValueError) as exc:
        raise DataError(f"prompt {i} of this call cannot be tokenized ({type(exc).__name__}: {first_line(exc)})") from None


def fitted_max_tokens(params: GenerationParams, ids: list[int], context_len: int) -> int:
    """The max_tokens one prompt gets: params.max_tokens, lowered to the context's room
    when params.fit_context."""
    if params.fit_context:
        return max(1, min(params.max_tokens, context_len - len(ids)))
    return params.max_tokens


class BusyClock:
    """Adds to `stats.busy_seconds` the wall time during which at least one request is in
    flight, overlapping requests counted once (engines whose work happens elsewhere: a
    vLLM engine core, a server)."""

    def __init__(self, stats: Any) -> None:
        self.stats, self.active, self.since = stats, 0, 0.0

    def enter(self) -> None:
        if self.active == 0:
            self.since = time.perf_counter()
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:
            self.stats.busy_seconds += time.perf_counter() - self.since
