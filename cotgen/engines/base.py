"""The one async interface every engine implements, and its result records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


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
