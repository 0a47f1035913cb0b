"""The one async interface every engine implements, and its result records."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cotgen.errors import DataError, RunError, UsageError


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

    @property
    def mean_logprob(self) -> float | None:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else None


@runtime_checkable
class Engine(Protocol):
    """An LLM behind one async interface. All trees of a run share one instance, so an
    implementation gathers concurrent calls into batches."""

    name: str  # "hf" | "vllm" | "openai"
    model_id: str  # what was loaded: an alias resolved to a Hub id, or a folder

    async def generate(
        self,
        prompts: list[str],
        n: int = 1,
        max_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """`n` completions per prompt; result[i] belongs to prompts[i]. A prompt that cannot
        be served (longer than the context) raises for that call only."""
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


def encode_prompts(tokenizer: Any, prompts: list[str], room: int, context_len: int, model_id: str) -> list[list[int]]:
    """Token ids per prompt; refuses the whole call if one prompt is empty or leaves fewer
    than `room` tokens of the context (so it fails alone, before it joins a batch)."""
    if isinstance(prompts, str):
        raise UsageError("prompts must be a list of strings, not one string")
    encoded = []
    for i, prompt in enumerate(prompts):
        ids = tokenizer.encode(prompt)
        if not ids:
            raise DataError(f"prompt {i} of this call is empty once tokenized")
        if len(ids) + room > context_len:
            raise DataError(
                f"prompt {i} of this call is {len(ids)} tokens; with {room} tokens to generate "
                f"it exceeds the context of {context_len} tokens of '{model_id}'"
            )
        encoded.append(ids)
    return encoded


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
