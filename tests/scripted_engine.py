"""One scripted Engine for the run-level tests (synthesize, engine failure, the Ray worker)."""

from __future__ import annotations

import asyncio

from cotgen.engines.base import Completion
from cotgen.errors import DataError, EngineFailed


class ScriptedEngine:
    """Answers at once, the text a function of the request's seed, so runs are reproducible.

    fail_on: prompts naming this text raise `fail_with` (the tree fails, the run goes on).
    interrupt_after / die_after: after that many calls, raise KeyboardInterrupt / EngineFailed.
    """

    name = "scripted"
    model_id = "scripted"

    def __init__(self, fail_on=None, fail_with=DataError, interrupt_after=None, die_after=None):
        self.fail_on, self.fail_with = fail_on, fail_with
        self.interrupt_after, self.die_after = interrupt_after, die_after
        self.calls = 0

    async def generate(self, prompts, params):
        self.calls += 1
        if self.interrupt_after is not None and self.calls > self.interrupt_after:
            raise KeyboardInterrupt
        await asyncio.sleep(0)
        if self.die_after is not None and self.calls > self.die_after:
            raise EngineFailed("the engine died")
        if self.fail_on and any(self.fail_on in p for p in prompts):
            raise self.fail_with("the engine refused this prompt")
        return [[Completion(text=f"step {params.seed} {i}", tokens=3, finish_reason="stop", logprobs=[-1.0] * 3)
                 for i in range(params.n)] for _ in prompts]

    async def score(self, prompts, candidates):
        return [{c: -0.7 for c in candidates} for _ in prompts]

    def render_chat(self, messages, add_generation_prompt=True):
        return "\n".join(m["content"] for m in messages) + "\n"

    def has_tokens(self, tokens):
        return False

    async def close(self):
        pass
