"""Ratings after the search: Math-Shepherd's soft estimate where terminal leaves were graded."""

from __future__ import annotations

from cotgen.tree import Tree

POSITIVE_AT = 0.5  # a node whose Monte Carlo value (or, failing that, estimate) is >= this is positive


def monte_carlo_values(tree: Tree) -> dict[int, tuple[int, int]]:
    """node id -> (correct, graded) terminal leaves in its subtree, itself included."""
    kids = tree.children()
    counts: dict[int, tuple[int, int]] = {}
    for node in reversed(list(tree.preorder())):  # children before parents
        if node.terminal and node.correct is not None:
            counts[node.id] = (int(node.correct), 1)
            continue
        good = total = 0
        for child in kids[node.id]:
            g, t = counts[child.id]
            good, total = good + g, total + t
        counts[node.id] = (good, total)
    return counts


def assign_ratings(tree: Tree) -> Tree:
    """Set every node's rating in place; the root (the problem) and critics stay unknown."""
    counts = monte_carlo_values(tree)
    for node in tree.nodes:
        good, total = counts[node.id]
        if node.parent == -1 or node.kind == "critic":
            node.rating = "unknown"
        elif total:
            node.rating = "positive" if good / total >= POSITIVE_AT else "negative"
        elif node.q_estimate is not None:
            node.rating = "positive" if node.q_estimate >= POSITIVE_AT else "negative"
        else:
            node.rating = "unknown"
    return tree
