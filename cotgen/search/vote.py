"""Choosing a final answer without the gold: the tree's vote, plain or weighted by value.

A searched tree's leaves that state a final answer are its ballots; a leaf stands for the
`visits` rollouts that ended there (identical steps are one node). Two ways to choose:

- `vote`: the answer most rollouts ended at, best-of-N's majority applied to the tree.
- `weighted_vote`: every rollout counts its answer's value-head estimate, and the answer with
  the highest sum wins (huggingface/search-and-learn's "weighted best-of-N", a rollout's
  score its value). A confident answer few rollouts reached can beat a doubtful one many
  did; with a value head that tells right from wrong no better than chance, it is the vote
  with noise added.

Ties go to the answer stated first (the answer of the earliest ballot among the tied). Pure functions of a Tree; what a leaf's text states as
its answer is the caller's `extract` (cotgen.answers.extract_answer), as grading is the
search's Grader.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from cotgen.tree import Node, Tree

Extract = Callable[[str], str | None]  # a text's final answer, None when it states none


@dataclass(frozen=True)
class Ballot:
    """A leaf that states a final answer, and the rollouts that ended there."""

    leaf: Node
    answer: str
    rollouts: int


def ballots(tree: Tree, extract: Extract) -> list[Ballot]:
    """The tree's answered leaves in creation order (a leaf never visited counts once)."""
    kids = tree.children()
    out = []
    for node in tree.nodes:
        if node.terminal and not kids[node.id]:
            answer = extract(node.text)
            if answer is not None:
                out.append(Ballot(node, answer, max(1, node.visits)))
    return out


def estimate(leaf: Node) -> float:
    """A leaf's value-head estimate; its backed-up value where it has none (a graded leaf)."""
    return leaf.q_estimate if leaf.q_estimate is not None else leaf.value


def _weight(leaf: Node, score: Callable[[Node], float] | None) -> float:
    """What one rollout ending at `leaf` adds: 1, or its score; a score that is not a finite
    number (NaN or infinite in a tree read from elsewhere; the search itself clamps NaN to 0)
    adds 0, so one such leaf cannot make every tally NaN."""
    if score is None:
        return 1.0
    w = score(leaf)
    return w if isinstance(w, (int, float)) and math.isfinite(w) else 0.0


def tally(votes: list[Ballot], score: Callable[[Node], float] | None = None) -> dict[str, float]:
    """Answer -> its rollouts, each weighted by `score` of its leaf (None: each counts 1).
    Answers are grouped by their exact text, as best-of-N's majority groups them."""
    out: dict[str, float] = {}
    for b in votes:
        out[b.answer] = out.get(b.answer, 0.0) + b.rollouts * _weight(b.leaf, score)
    return out


def winner(votes: list[Ballot], score: Callable[[Node], float] | None = None) -> Ballot | None:
    """The first ballot of the answer with the highest tally (see `tally`), ties to the answer
    stated first; None without one."""
    if not votes:
        return None
    sums = tally(votes, score)
    first: dict[str, tuple[int, Ballot]] = {}
    for position, b in enumerate(votes):
        first.setdefault(b.answer, (position, b))
    return max(first.values(), key=lambda pb: (sums[pb[1].answer], -pb[0]))[1]


def vote(tree: Tree, extract: Extract) -> Ballot | None:
    """The answer most rollouts ended at."""
    return winner(ballots(tree, extract))


def weighted_vote(tree: Tree, extract: Extract, score: Callable[[Node], float] = estimate) -> Ballot | None:
    """The answer whose rollouts' value-head estimates sum highest."""
    return winner(ballots(tree, extract), score)


def answer_leaf(tree: Tree, extract: Extract, score: Callable[[Node], float] = estimate) -> Node | None:
    """The leaf that stands for the weighted vote's answer: of the winning answer's leaves,
    the one whose rollouts add the most to its tally (ties to the earliest); None when no
    leaf states an answer. What a reader of a tree with no gold is shown as its answer."""
    votes = ballots(tree, extract)
    won = winner(votes, score)
    if won is None:
        return None
    mine = [b for b in votes if b.answer == won.answer]
    return max(mine, key=lambda b: (b.rollouts * _weight(b.leaf, score), -b.leaf.id)).leaf
