"""PUCT selection and the sibling prior it uses."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from cotgen.tree import Node


def sibling_priors(logprobs: Sequence[float | None]) -> list[float]:
    """Softmax over siblings of their mean token log-prob; uniform when any is unknown."""
    if not logprobs:
        return []
    if any(lp is None for lp in logprobs):
        return [1.0 / len(logprobs)] * len(logprobs)
    top = max(logprobs)  # type: ignore[type-var]
    weights = [math.exp(lp - top) for lp in logprobs]  # type: ignore[operator]
    total = sum(weights)
    return [w / total for w in weights]


def effective_q(node: Node, pending: float) -> float:
    """Q with `pending` virtual losses (each a visit worth 0) folded in.

    A node no simulation has backed up yet holds its value head's estimate in `value`.
    """
    if node.visits + pending <= 0:
        return node.value
    return node.value * node.visits / (node.visits + pending)


def puct_score(q: float, prior: float, parent_visits: float, child_visits: float, c_puct: float) -> float:
    """Q + c_puct * P * sqrt(N(parent)) / (1 + N(child))."""
    return q + c_puct * prior * math.sqrt(parent_visits) / (1.0 + child_visits)


def select_child(
    parent: Node,
    children: Sequence[Node],
    c_puct: float,
    pending: Mapping[int, float] | None = None,
) -> Node:
    """The child with the highest PUCT score; ties go to the earliest-created child.

    N(parent) counts at least 1: a parent is selected through only after its expansion, which
    is a visit even while that simulation's backup is still in flight.
    """
    if not children:
        raise ValueError(f"node {parent.id} has no children to select from")
    pending = pending or {}
    n_parent = max(1.0, parent.visits + pending.get(parent.id, 0.0))
    best, best_score = children[0], -math.inf
    for child in children:
        vl = pending.get(child.id, 0.0)
        score = puct_score(effective_q(child, vl), child.prior, n_parent, child.visits + vl, c_puct)
        if score > best_score:
            best, best_score = child, score
    return best
