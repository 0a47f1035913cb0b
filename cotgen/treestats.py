"""Statistics over a stream of trees: shape, kinds, ratings, correct leaves (`cotgen stats`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cotgen.tree import KINDS, RATINGS, Tree


@dataclass
class TreeSetSummary:
    """Running totals; memory is constant in the number of trees."""

    trees: int = 0
    failed: int = 0
    nodes: int = 0
    min_nodes: int | None = None
    max_nodes: int = 0
    depth_sum: int = 0
    max_depth: int = 0
    internal_nodes: int = 0
    child_links: int = 0
    terminal_leaves: int = 0
    correct_leaves: int = 0
    trees_with_correct: int = 0
    simulations: int = 0
    generated_tokens: int = 0
    kinds: Counter = field(default_factory=Counter)
    ratings: Counter = field(default_factory=Counter)

    def add(self, tree: Tree) -> None:
        self.trees += 1
        if tree.error is not None:
            self.failed += 1
        n = len(tree.nodes)
        self.nodes += n
        self.min_nodes = n if self.min_nodes is None else min(self.min_nodes, n)
        self.max_nodes = max(self.max_nodes, n)
        depth: dict[int, int] = {}
        children: Counter = Counter()
        for node in tree.nodes:  # parents precede children (a tree invariant)
            depth[node.id] = depth.get(node.parent, -1) + 1
            children[node.parent] += 1
            self.kinds[node.kind] += 1
            self.ratings[node.rating] += 1
        tree_depth = max(depth.values(), default=0)
        self.depth_sum += tree_depth
        self.max_depth = max(self.max_depth, tree_depth)
        internal = [c for parent, c in children.items() if parent != -1]
        self.internal_nodes += len(internal)
        self.child_links += sum(internal)
        terminal = [node for node in tree.nodes if node.terminal]
        self.terminal_leaves += len(terminal)
        correct = sum(node.correct is True for node in terminal)
        self.correct_leaves += correct
        self.trees_with_correct += correct > 0
        self.simulations += tree.stats.simulations
        self.generated_tokens += tree.stats.generated_tokens

    def as_dict(self) -> dict[str, Any]:
        t = max(self.trees, 1)
        total = max(self.nodes, 1)
        return {
            "trees": self.trees,
            "failed_trees": self.failed,
            "nodes": self.nodes,
            "nodes_per_tree_mean": self.nodes / t,
            "nodes_per_tree_min": self.min_nodes or 0,
            "nodes_per_tree_max": self.max_nodes,
            "depth_mean": self.depth_sum / t,
            "depth_max": self.max_depth,
            "branching_mean": self.child_links / max(self.internal_nodes, 1),
            "kind_share": {k: self.kinds[k] / total for k in KINDS},
            "rating_share": {r: self.ratings[r] / total for r in RATINGS},
            "terminal_leaves": self.terminal_leaves,
            "correct_leaves": self.correct_leaves,
            "correct_leaf_rate": self.correct_leaves / max(self.terminal_leaves, 1),
            "trees_with_correct_leaf": self.trees_with_correct,
            "simulations": self.simulations,
            "generated_tokens": self.generated_tokens,
        }


def summarize(trees: Iterable[Tree]) -> TreeSetSummary:
    summary = TreeSetSummary()
    for tree in trees:
        summary.add(tree)
    return summary


VALUE_BINS = 20  # leaf values in [0, 1] are counted in this many equal bins


@dataclass
class TreeHistograms:
    """Counts behind `cotgen stats --plot`. Memory grows with the number of distinct depths
    and branchings (token totals are kept to two significant digits), not with the number
    of trees or nodes."""

    tree_depth: Counter = field(default_factory=Counter)  # max depth -> trees
    branching: Counter = field(default_factory=Counter)  # children -> internal nodes
    correct_leaf_values: Counter = field(default_factory=Counter)  # value bin -> correct terminal leaves
    wrong_leaf_values: Counter = field(default_factory=Counter)  # value bin -> wrong terminal leaves
    terminal_by_depth: Counter = field(default_factory=Counter)  # depth -> graded terminal leaves
    correct_by_depth: Counter = field(default_factory=Counter)  # depth -> correct terminal leaves
    tokens_per_tree: Counter = field(default_factory=Counter)  # generated tokens, 2 digits -> trees

    def add(self, tree: Tree) -> None:
        depth: dict[int, int] = {}
        children: Counter = Counter()
        for node in tree.nodes:  # parents precede children (a tree invariant)
            depth[node.id] = depth.get(node.parent, -1) + 1
            if node.parent != -1:
                children[node.parent] += 1
            if node.terminal and node.correct is not None:
                d = depth[node.id]
                self.terminal_by_depth[d] += 1
                self.correct_by_depth[d] += node.correct
                values = self.correct_leaf_values if node.correct else self.wrong_leaf_values
                values[min(int(node.value * VALUE_BINS), VALUE_BINS - 1)] += 1
        self.tree_depth[max(depth.values(), default=0)] += 1
        self.branching.update(children.values())
        # Trees parsed from OpenLongCoT carry no run totals; their nodes' tokens still count.
        self.tokens_per_tree[_two_digits(tree.stats.generated_tokens or sum(n.tokens for n in tree.nodes))] += 1

    def as_dict(self) -> dict[str, Any]:
        def keyed(c: Counter) -> dict[str, int]:
            return {str(k): c[k] for k in sorted(c)}

        return {
            "tree_depth": keyed(self.tree_depth),
            "branching": keyed(self.branching),
            "value_bins": VALUE_BINS,
            "correct_leaf_values": keyed(self.correct_leaf_values),
            "wrong_leaf_values": keyed(self.wrong_leaf_values),
            "terminal_by_depth": keyed(self.terminal_by_depth),
            "correct_by_depth": keyed(self.correct_by_depth),
            "tokens_per_tree": keyed(self.tokens_per_tree),
        }


def _two_digits(n: int) -> int:
    """n rounded down to two significant digits (1234 -> 1200), so the counter stays small."""
    step = 10 ** max(len(str(abs(n))) - 2, 0)
    return n // step * step
