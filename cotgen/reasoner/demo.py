"""`python -m cotgen.reasoner.demo RUN`: what `make demo` shows after its search: greedy
accuracy of the same model on the same problems, and best-of-N at each problem's own search
tokens, against the share of trees where the search found a correct answer (a table on
stderr), the step ratings' F1 against exact step truth, one correct path, and that tree's id
on stdout."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cotgen.engines.config import EngineConfig
from cotgen.io.trees import iter_input_trees
from cotgen.problems import Problem
from cotgen.reasoner.arith import label_path
from cotgen.reasoner.evaluate import bon_at, rating_f1
from cotgen.search.config import SearchConfig
from cotgen.tree import Tree, solution_steps

BON_SAMPLES = 32  # whole solutions drawn per problem; best-of-N takes a prefix of them


def correct_leaves(tree: Tree) -> list[int]:
    return [n.id for n in tree.nodes if n.terminal and n.correct]


def best_correct_path(tree: Tree) -> list[str]:
    """The reasoning of the highest-value correct leaf (what the Marco-o1 export takes)."""
    leaf = max(correct_leaves(tree), key=lambda i: (tree.nodes[i].value, -i))
    return [n.text for n in solution_steps(tree.path_to(leaf))]


def sound(tree: Tree, leaf: int) -> bool:
    """Every step on the path to `leaf` is right by exact step truth: not a right answer
    reached through wrong arithmetic (which the grader, seeing only the answer, accepts)."""
    steps = [n.text for n in solution_steps(tree.path_to(leaf))]
    return all(v.correct for v in label_path(tree.problem, steps))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    args = parser.parse_args(argv)
    err = Console(stderr=True, highlight=False)
    trees = list(iter_input_trees([args.run]))
    if not trees:
        err.print(f"{args.run}: no trees")
        return 1
    model = trees[0].model or "tiny-reasoner"
    found = [t for t in trees if correct_leaves(t)]

    from cotgen.engines import build_engine
    from cotgen.reasoner.evaluate import sample_solutions

    search = SearchConfig(**{k: v for k, v in trees[0].config.items() if k in SearchConfig.__dataclass_fields__})

    async def baselines() -> tuple[list[bool], list[bool]]:
        """Greedy; and best-of-N at the search's temperature, each problem's samples taken in
        order until they used the tokens its tree used or `enough_correct` were right."""
        engine = build_engine(EngineConfig(model=model))
        try:
            problems = [Problem(t.id, t.problem, t.answer, t.source) for t in trees]
            greedy = [s[0].correct for s in await sample_solutions(engine, problems)]
            rows = await sample_solutions(engine, problems, n=BON_SAMPLES, temperature=search.temperature,
                                          top_p=search.top_p, seed=search.seed)
        finally:
            await engine.close()
        bon = [bon_at([(s.tokens, s.answer, s.correct) for s in row], tree.stats.generated_tokens,
                      search.enough_correct)[0]
               for tree, row in zip(trees, rows, strict=True)]
        return greedy, bon

    greedy_ok, bon_ok = asyncio.run(baselines())
    table = Table(title=f"{model} on {len(trees)} held-out problems")
    table.add_column("method")
    table.add_column("solved", justify="right")
    table.add_column("share", justify="right")
    table.add_row("greedy chain of thought", str(sum(greedy_ok)), f"{sum(greedy_ok) / len(trees):.0%}")
    table.add_row("best-of-N, each problem the tokens its tree used", str(sum(bon_ok)), f"{sum(bon_ok) / len(trees):.0%}")
    table.add_row("search: a correct answer in the tree", str(len(found)), f"{len(found) / len(trees):.0%}")
    clean = [t for t in found if any(sound(t, leaf) for leaf in correct_leaves(t))]
    table.add_row("  of which a path with every step right", str(len(clean)), f"{len(clean) / len(trees):.0%}")
    tokens = sum(t.stats.generated_tokens for t in trees)
    err.print(table)
    err.print(f"search: {tokens} generated tokens in all ({tokens / len(trees):.0f} per tree); "
              f"step ratings: {rating_f1(trees):.2f} ProcessBench F1 against exact step truth")
    if not found:
        err.print("no tree has a correct leaf")
        return 1
    # Show a tree whose correct path is sound, where there is one.
    shown = max(found, key=lambda t: (t in clean, len(correct_leaves(t))))
    err.print(f"\na correct path of tree {shown.id} ({len(correct_leaves(shown))} correct leaves):")
    err.print(f"  problem: {shown.problem}", markup=False)
    steps = best_correct_path(shown)
    verdicts = label_path(shown.problem, steps)
    for i, (step, v) in enumerate(zip(steps, verdicts, strict=True), 1):
        note = "" if v.correct else f"   <- wrong ({v.reason}): the answer is right, this step is not"
        err.print(f"  {i}. {step}{note}", markup=False)
    sys.stdout.write(shown.id + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
