"""Ratings after the search: Math-Shepherd's hard estimate over the rollouts below each step.

Every simulation is a rollout that ends at a leaf: a graded final answer, or (gold visible)
a failed end, a completion that stopped without an answer or hit its token limit. A leaf
stands for the `visits` rollouts that ended there (identical steps are merged), so counts
weigh each leaf by its visits. A step is

- positive when some correct answer is reached through it,
- negative when none is and at least `negative_after` rollouts through it were tried,
- unknown otherwise (or, where no leaf below it is graded, read off the value head's
  estimate, the only evidence a gold-hidden tree has).

Where no correct answer is reached through a step's parent either (a problem the rollouts
never solved, or a part of the tree none of its correct answers pass through), the hard
rule cannot place the error: every step there is negative, the right ones too. There the
rollouts' agreement places it (`consensus`): a step that at least half the rollouts through
its parent took (they agree on it) is unknown, and negative are the steps where they parted
(fewer than half took it). The first negative step of such a path is where its rollouts
first disagreed, which is where a model that samples a step inconsistently made its error.

A graded final answer is rated by its verdict. The soft share, correct / tried, stays the
node's Monte Carlo value (`label_values` in formats.prm, preference pairs).
"""

from __future__ import annotations

from cotgen.tree import Node, Tree

POSITIVE_AT = 0.5  # a value-head estimate >= this rates a step with no graded leaf positive
NEGATIVE_AFTER = 1  # SearchConfig.negative_after's default


def rolled_out(tree: Tree) -> bool:
    """Was `tree` searched by rollouts (every leaf ends one)? Its recorded settings say so. A
    tree of cotgen before 0.3 (or from another tool) has leaves no simulation ever expanded:
    those are no failed tries."""
    return "samples" in tree.config


def leaf_counts(node: Node, failed_ends: bool) -> tuple[int, int]:
    """(correct, tried) rollouts that ended at leaf `node`; with `failed_ends` (a graded
    tree searched by rollouts) an unanswered or cut-off end counts as a failed try."""
    weight = max(1, node.visits)
    if node.terminal and node.correct is not None:
        return (weight if node.correct else 0, weight)
    if failed_ends and not node.terminal and node.kind in ("step", "refine"):
        return (0, weight)
    return (0, 0)


def monte_carlo_values(tree: Tree, failed_ends: bool | None = None) -> dict[int, tuple[int, int]]:
    """node id -> (correct, tried) rollouts that ended in its subtree, itself included.
    `failed_ends`: count rollouts that ended without an answer (default: for a graded tree
    searched by rollouts, see `rolled_out`)."""
    kids = tree.children()
    if failed_ends is None:
        failed_ends = rolled_out(tree)
    graded = failed_ends and tree.answer is not None
    counts: dict[int, tuple[int, int]] = {}
    for node in reversed(list(tree.preorder())):  # children before parents
        if not kids[node.id]:
            counts[node.id] = leaf_counts(node, graded)
            continue
        good = total = 0
        for child in kids[node.id]:
            g, t = counts[child.id]
            good, total = good + g, total + t
        counts[node.id] = (good, total)
    return counts


def own_counts(tree: Tree, failed_ends: bool | None = None) -> dict[int, tuple[int, int]]:
    """node id -> (correct, tried) rollouts that the node's own reasoning reaches.

    The leaves under a node's critics are not the node's: the refine replaces the step
    its critic criticized, so a wrong step that was later fixed does not earn the fix's
    success. Those leaves still count for every ancestor, whose paths do reach them.
    """
    counts = monte_carlo_values(tree, failed_ends)
    kids = tree.children()
    own: dict[int, tuple[int, int]] = {}
    for node in tree.nodes:
        good, graded = counts.get(node.id, (0, 0))  # (0, 0): not reachable from the root
        if not (node.terminal and node.correct is not None):  # a graded leaf counts only itself
            for critic in (c for c in kids[node.id] if c.kind == "critic"):
                good, graded = good - counts[critic.id][0], graded - counts[critic.id][1]
        own[node.id] = (good, graded)
    return own


def assign_ratings(tree: Tree, negative_after: int = NEGATIVE_AFTER, consensus: bool = True,
                   failed_ends: bool | None = None) -> Tree:
    """Set every node's rating in place (the rule in the module docstring); the root (the
    problem) and critics stay unknown. `failed_ends` as in monte_carlo_values (the search
    says True)."""
    counts = own_counts(tree, failed_ends)
    index = tree.by_id()
    for node in tree.nodes:
        good, tried = counts[node.id]
        if node.parent == -1 or node.kind == "critic":
            node.rating = "unknown"
        elif node.terminal and node.correct is not None:
            node.rating = "positive" if node.correct else "negative"
        elif good > 0:
            node.rating = "positive"
        elif tried >= negative_after:
            parent = index.get(node.parent)
            unplaced = consensus and parent is not None and counts[parent.id][0] == 0
            agreed = unplaced and parent is not None and 2 * tried >= counts[parent.id][1]
            node.rating = "unknown" if agreed else "negative"
        elif tried == 0 and node.q_estimate is not None:
            node.rating = "positive" if node.q_estimate >= POSITIVE_AT else "negative"
        else:
            node.rating = "unknown"
    return tree
