"""Scripted stand-ins for the policy, valuer and grader the search core talks to."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from cotgen.search import Candidate, Evaluation, Proposal
from cotgen.tree import Node, Tree


@dataclass
class FakePolicy:
    """Candidates from a seeded rng: some steps carry a boxed answer, right or wrong.

    `answer_rate` is the share of steps that state an answer; `right_rate` the share of
    those that are right. `search` (set by the test) lets it record virtual losses it sees.
    """

    answer_rate: float = 0.2
    right_rate: float = 0.5
    empty: bool = False
    yield_each_call: bool = True
    calls: list[Proposal] = field(default_factory=list)
    pending_seen: list[dict[int, float]] = field(default_factory=list)
    search: object = None

    async def propose(self, tree: Tree, proposal: Proposal) -> list[Candidate]:
        self.calls.append(proposal)
        if self.search is not None:
            self.pending_seen.append(dict(self.search.pending))
        if self.yield_each_call:
            await asyncio.sleep(0)  # let other simulations of the tree run meanwhile
        rng = random.Random(proposal.seed)
        out = []
        for i in range(proposal.n):
            if self.empty:
                text = "  "
            elif proposal.kind == "conclusion" or (proposal.kind in ("step", "refine") and rng.random() < self.answer_rate):
                ans = tree.answer if rng.random() < self.right_rate else "999"
                text = f"{proposal.kind} {i}: so \\boxed{{{ans}}}"
            else:
                text = f"{proposal.kind} {i} of {proposal.parent} ({rng.randrange(1000)})"
            out.append(Candidate(text=text, tokens=5, logprob=-rng.random()))
        return out


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
