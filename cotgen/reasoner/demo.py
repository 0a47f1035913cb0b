"""`python -m cotgen.reasoner.demo RUN`: what `make demo` shows after its search: greedy
accuracy of the same model on the same problems against the share of trees where the search
found a correct answer (a table on stderr), one correct path, and that tree's id on stdout."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cotgen.config import EngineConfig
from cotgen.problems import Problem
from cotgen.shards import iter_trees, shard_paths
from cotgen.tree import Tree, solution_steps


def correct_leaves(tree: Tree) -> list[int]:
    return [n.id for n in tree.nodes if n.terminal and n.correct]


def best_correct_path(tree: Tree) -> list[str]:
    """The reasoning of the highest-value correct leaf (what the Marco-o1 export takes)."""
    leaf = max(correct_leaves(tree), key=lambda i: (tree.nodes[i].value, -i))
    return [n.text for n in solution_steps(tree.path_to(leaf))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    args = parser.parse_args(argv)
    err = Console(stderr=True, highlight=False)
    trees = list(iter_trees(shard_paths(args.run)))
    if not trees:
        err.print(f"{args.run}: no trees")
        return 1
    model = trees[0].model or "tiny-reasoner"
    found = [t for t in trees if correct_leaves(t)]

    from cotgen.engines import build_engine
    from cotgen.reasoner.evaluate import sample_solutions

    async def greedy() -> list[bool]:
        engine = build_engine(EngineConfig(model=model))
        try:
            problems = [Problem(t.id, t.problem, t.answer, t.source) for t in trees]
            return [s[0].correct for s in await sample_solutions(engine, problems)]
        finally:
            await engine.close()

    greedy_ok = asyncio.run(greedy())
    table = Table(title=f"{model} on {len(trees)} held-out problems")
    table.add_column("method")
    table.add_column("solved", justify="right")
    table.add_column("share", justify="right")
    table.add_row("greedy chain of thought", str(sum(greedy_ok)), f"{sum(greedy_ok) / len(trees):.0%}")
    table.add_row("MCTS: a correct leaf in the tree", str(len(found)), f"{len(found) / len(trees):.0%}")
    tokens = sum(t.stats.generated_tokens for t in trees)
    err.print(table)
    err.print(f"search: {tokens} generated tokens in all ({tokens / len(trees):.0f} per tree)")
    if not found:
        err.print("no tree has a correct leaf")
        return 1
    shown = max(found, key=lambda t: len(correct_leaves(t)))
    err.print(f"\na correct path of tree {shown.id} ({len(correct_leaves(shown))} correct leaves):")
    err.print(f"  problem: {shown.problem}", markup=False)
    for i, step in enumerate(best_correct_path(shown), 1):
        err.print(f"  {i}. {step}", markup=False)
    sys.stdout.write(shown.id + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
