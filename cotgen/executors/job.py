"""The unit of work of a synthesize run: one problem's tree, searched on an engine, and the
tally of it that the run's counts are made of.

Both executors run exactly this (through executors.worker.TreeWorker), so a problem gives the
same tree in this process and on a Ray worker.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cotgen.errors import CotgenError, EngineFailed, first_line
from cotgen.search.config import SearchConfig
from cotgen.search.mcts import run_search
from cotgen.search.ratings import assign_ratings
from cotgen.tree import Tree

# A problem as an executor hands it to a worker: (its index in the run's list, question,
# answer, source). The index keeps two equal problems two problems.
Item = tuple[int, str, "str | None", str]


class EngineFailure(Exception):
    """The engine failed, not one tree's request (EngineFailed, or an error that is no
    CotgenError: a dead engine process, a CUDA fault, a bug). The run stops and records no
    tree in flight; synthesize raises EngineFailed for the user."""

    def __init__(self, reason: str, in_flight: int = 0, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.reason, self.in_flight, self.exit_code = reason, in_flight, exit_code

    @classmethod
    def of(cls, error: BaseException, in_flight: int) -> EngineFailure:
        if isinstance(error, EngineFailed):  # its exit code too: 3 for the chat engine's --max-cost
            return cls(str(error), in_flight, error.exit_code)
        return cls(f"the engine failed ({type(error).__name__}: {first_line(error)})", in_flight)


def new_tree(question: str, answer: str | None, source: str, model_id: str,
             search: SearchConfig) -> tuple[Tree, random.Random]:
    """A problem's tree, not yet searched, and its own rng: the same seed and problem give
    the same meta actions and engine seeds, whichever worker searches it."""
    tree = Tree.new(question, answer, source=source, model=model_id, config=search.to_dict())
    return tree, random.Random(search.seed ^ int(tree.id, 16))


class NotingGrader:
    """The search's grader for one tree, which keeps why a verdict is no comparison (grading
    ran out of time: graded wrong) by answer text, for `note_grades` to put on the nodes.
    The search core sees only True / False / None (search.protocols.Grader)."""

    def __init__(self) -> None:
        self.notes: dict[str, str] = {}

    def __call__(self, text: str, gold: str) -> bool | None:
        from cotgen.verify import grade as verify

        result = verify(text, gold)
        if result.reason is not None:
            self.notes[text] = result.reason
        return result.correct

    def note_grades(self, tree: Tree) -> None:
        for n in tree.nodes:
            if n.terminal and n.correct is False and n.text in self.notes:
                n.grade_note = self.notes[n.text]


async def search_tree(tree: Tree, policy: Any, valuer: Any, search: SearchConfig, rng: random.Random,
                      on_simulation: Callable[[int], None]) -> Tree:
    """Search one tree. A CotgenError an engine raises for one request (a prompt longer than
    the context, a request the server refused) is this tree's own failure: recorded on the
    tree, the run goes on. EngineFailed, and any error that is no CotgenError (a dead engine
    process, a CUDA fault, a bug), propagate and stop the run. An answer whose grading ran
    out of time keeps the reason on its node (grade_note)."""
    grader = NotingGrader()
    try:
        await run_search(tree, policy, valuer, grader, search, rng, on_simulation=on_simulation)
    except EngineFailed:
        raise
    except CotgenError as exc:
        tree.error = f"{type(exc).__name__}: {exc}"
        assign_ratings(tree, search.negative_after, failed_ends=True)
    grader.note_grades(tree)
    return tree


def tree_tally(index: int, tree: Tree) -> dict[str, Any]:
    """What a run counts of one finished tree, without the tree itself (it travels from a
    Ray worker to the driver). The run's figures are sums of these (RunTotals)."""
    terminals = [n for n in tree.nodes if n.terminal and n.correct is not None]
    return {
        "index": index,
        "id": tree.id,
        "simulations": tree.stats.simulations,
        "terminal_leaves": len(terminals),
        "correct_leaves": sum(1 for n in terminals if n.correct),
        "error": tree.error,
    }


@dataclass
class RunTotals:
    """Sums of tree tallies: the figures of the progress display and of the run's report.
    A new per-tree figure (a cost, say) is a key of tree_tally and a field here."""

    trees: int = 0
    failed: int = 0
    simulations: int = 0
    terminal_leaves: int = 0
    correct_leaves: int = 0
    solved: int = 0  # trees with at least one correct leaf
    first_error: str | None = None

    @classmethod
    def of(cls, tallies: Any) -> RunTotals:
        totals = cls()
        for t in tallies:
            totals.add(t)
        return totals

    def add(self, tally: dict[str, Any]) -> None:
        self.trees += 1
        self.simulations += tally["simulations"]
        self.terminal_leaves += tally["terminal_leaves"]
        self.correct_leaves += tally["correct_leaves"]
        self.solved += tally["correct_leaves"] > 0
        if tally["error"] is not None:
            self.failed += 1
            self.first_error = self.first_error or tally["error"]
