"""The search's only view of the world: Policy, Valuer and Grader protocols and their records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cotgen.tree import Node, Tree


@dataclass(frozen=True)
class Proposal:
    """One expansion request: `n` children of kind `kind` under node `parent`."""

    parent: int  # id of the node being expanded
    kind: str  # step | critic | refine | conclusion
    n: int  # candidates wanted, from one sampled request (they share the prompt prefix)
    seed: int  # engine seed for this request, drawn from the tree's rng


@dataclass(frozen=True)
class Candidate:
    """One proposed child, before it becomes a Node."""

    text: str
    tokens: int  # generated tokens
    logprob: float | None = None  # mean token log-prob; the prior is a softmax over these
    # Marco-o1's confidence (mean over tokens of p(chosen) / sum of top-5 p); None if unknown.
    confidence: float | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Evaluation:
    """The valuer's estimates for a list of candidates, and what producing them cost."""

    values: list[float]  # one per candidate, in [0, 1]
    tokens: int = 0  # tokens generated to produce them (rollouts), for throughput figures


class Policy(Protocol):
    async def propose(self, tree: Tree, proposal: Proposal) -> list[Candidate]:
        """`proposal.n` candidates for children of `proposal.parent`, of kind `proposal.kind`."""
        ...


class Valuer(Protocol):
    async def evaluate(
        self, tree: Tree, parent: Node, kind: str, candidates: list[Candidate], seed: int
    ) -> Evaluation:
        """Estimate, for each candidate child of `parent`, the chance its path ends correct."""
        ...


class Grader(Protocol):
    def __call__(self, text: str, gold: str) -> bool | None:
        """True / False for a final answer in `text` against `gold`; None when there is none."""
        ...
