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


def own_counts(tree: Tree) -> dict[int, tuple[int, int]]:
    """node id -> (correct, graded) terminal leaves that the node's own reasoning reaches.

    The leaves under a node's critics are not the node's: the refine replaces the step
    its critic criticized, so a wrong step that was later fixed does not earn the fix's
    success. Those leaves still count for every ancestor, whose paths do reach them.
    """
    counts = monte_carlo_values(tree)
    kids = tree.children()
    own: dict[int, tuple[int, int]] = {}
    for node in tree.nodes:
        good, graded = counts.get(node.id, (0, 0))  # (0, 0): not reachable from the root
        if not (node.terminal and node.correct is not None):  # a graded leaf counts only itself
            for critic in (c for c in kids[node.id] if c.kind == "critic"):
                good, graded = good - counts[critic.id][0], graded - counts[critic.id][1]
        own[node.id] = (good, graded)
    return own


def assign_ratings(tree: Tree) -> Tree:
    """Set every node's rating in place; the root (the problem) and critics stay unknown."""
    counts = own_counts(tree)
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
