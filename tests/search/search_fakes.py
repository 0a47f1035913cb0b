"""Scripted stand-ins for the policy, valuer and grader the search core talks to."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from cotgen.search import Candidate, Evaluation, Proposal
from cotgen.search.protocols import Rollout
from cotgen.tree import Node, Tree, solution_steps


@dataclass
class FakePolicy:
    """Rollouts from a seeded rng over a small step vocabulary, so identical steps recur.

    A rollout continues the path to `start` with `length` more steps in all: each step is
    one of `choices` texts at its depth, the last states an answer (`right_rate` of them
    right). `truncate_rate` of rollouts hit the token limit instead. `search` (set by the
    test) lets it record the virtual losses it sees.
    """

    right_rate: float = 0.5
    choices: int = 2
    length: int = 3
    truncate_rate: float = 0.0
    empty: bool = False
    yield_each_call: bool = True
    starts: list[int] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)
    pending_seen: list[dict[int, float]] = field(default_factory=list)
    search: object = None
    generated: int = 0  # tokens of every rollout, critic and refine it wrote

    async def rollout(self, tree: Tree, start: Node, seed: int) -> Rollout:
        self.starts.append(start.id)
        if self.search is not None:
            self.pending_seen.append(dict(self.search.pending))
        if self.yield_each_call:
            await asyncio.sleep(0)  # let other simulations of the tree run meanwhile
        if self.empty:
            return Rollout(steps=[], tokens=3, prompt_tokens=7)
        rng = random.Random(seed)
        done = len(solution_steps(tree.path_to(start.id)))
        steps = []
        for depth in range(done, max(done + 1, self.length)):
            steps.append(Candidate(text=f"step {depth}.{rng.randrange(self.choices)}", tokens=5,
                                   logprob=-rng.random(), prompt_tokens=0))
        truncated = rng.random() < self.truncate_rate
        if truncated:
            steps[-1] = Candidate(text=steps[-1].text + " and then", tokens=5, logprob=-1.0)
        else:
            ans = tree.answer if rng.random() < self.right_rate else "999"
            steps[-1] = Candidate(text=f"so \\boxed{{{ans}}}", tokens=5, logprob=-rng.random())
        self.generated += 5 * len(steps)
        return Rollout(steps=steps, truncated=truncated, tokens=5 * len(steps), prompt_tokens=11)

    async def propose(self, tree: Tree, proposal: Proposal) -> list[Candidate]:
        self.proposals.append(proposal)
        self.generated += 4 * proposal.n
        if self.yield_each_call:
            await asyncio.sleep(0)
        return [Candidate(text=f"{proposal.kind} of {proposal.parent}", tokens=4, logprob=-0.5, prompt_tokens=13)
                for _ in range(proposal.n)]


@dataclass
class FakeValuer:
    """Values from a script (consumed in order) or else a constant."""

    script: list[float] = field(default_factory=list)
    default: float = 0.5
    calls: int = 0

    async def evaluate(self, tree: Tree, parent: Node, kind: str, candidates: list[Candidate], seed: int) -> Evaluation:
        self.calls += 1
        values = [self.script.pop(0) if self.script else self.default for _ in candidates]
        return Evaluation(values=values, tokens=1)


def fake_grader(text: str, gold: str) -> bool | None:
    if "\\boxed{" not in text:
        return None
    return f"\\boxed{{{gold}}}" in text
