"""The search's only view of the world: Policy, Valuer and Grader protocols and their records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cotgen.tree import Node, Tree


@dataclass(frozen=True)
class Proposal:
    """One request for a single-text child: a critic of node `parent`, or the refine of the
    step that critic criticized (`parent` is then the critic)."""

    parent: int  # id of the node the child goes under
    kind: str  # critic | refine
    n: int  # candidates wanted, from one sampled request (they share the prompt prefix)
    seed: int  # engine seed for this request, drawn from the tree's rng


@dataclass(frozen=True)
class Candidate:
    """One proposed text: a critic or refine, or one step of a rollout."""

    text: str
    tokens: int  # generated tokens (for a rollout step: its share of the completion's tokens)
    logprob: float | None = None  # mean token log-prob; the prior is a softmax over siblings' ones
    # Marco-o1's confidence (mean over tokens of p(chosen) / sum of top-5 p); None if unknown.
    confidence: float | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 0  # prompt tokens the engine processed for it (0 where it does not say)


@dataclass(frozen=True)
class Rollout:
    """The rest of a solution from some node, sampled in one request and split into steps.

    `steps` stop at the first step that states a final answer (text after it is dropped);
    `truncated` is True when the completion hit its token limit before an answer: its
    last step is then cut short and is never an answer.
    """

    steps: list[Candidate]
    truncated: bool = False
    tokens: int = 0  # every generated token, dropped text included
    prompt_tokens: int = 0  # prompt tokens processed (0 where the engine does not say)


class Policy(Protocol):
    async def rollout(self, tree: Tree, start: Node, seed: int) -> Rollout:
        """The rest of the solution after the reasoning on the path to `start`."""
        ...

    async def propose(self, tree: Tree, proposal: Proposal) -> list[Candidate]:
        """`proposal.n` critic or refine texts for a child of `proposal.parent`."""
        ...


@dataclass(frozen=True)
class Evaluation:
    """The valuer's estimates for a list of candidates, and what producing them cost."""

    values: list[float]  # one per candidate, in [0, 1]
    tokens: int = 0  # tokens generated to produce them, for throughput figures


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
