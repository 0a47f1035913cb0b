"""The search loop: select by PUCT, expand with one n-sampled proposal, evaluate, back up.

Visit accounting, the invariant tests check after a search: every simulation adds one visit
to each node on its path, root to the node where it ended (the leaf it expanded, or a terminal
or dead-end leaf it revisited). A node is expanded by exactly one simulation, the first to end
at it, and every later simulation through it continues into one child. Hence, once no
simulation is in flight, for every node with children:

    visits == 1 + sum(child.visits)    # the 1 is the simulation that expanded it
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from random import Random

from cotgen.search.config import SearchConfig
from cotgen.search.protocols import Candidate, Grader, Policy, Proposal, Valuer
from cotgen.search.ratings import assign_ratings
from cotgen.search.select import select_child, sibling_priors
from cotgen.tree import Node, Tree, may_be_terminal


class TreeSearch:
    """One tree's search state. `pending` holds the virtual loss of simulations in flight."""

    def __init__(
        self, tree: Tree, policy: Policy, valuer: Valuer, grader: Grader, cfg: SearchConfig, rng: Random,
        on_simulation: Callable[[int], None] | None = None,
    ) -> None:
        self.tree, self.policy, self.valuer, self.grader = tree, policy, valuer, grader
        self.cfg, self.rng = cfg, rng
        self.on_simulation = on_simulation  # told the count of finished simulations after each
        self.pending: dict[int, float] = {}
        self.expanding: dict[int, asyncio.Event] = {}
        # Leaves that will never get children: a critic without refine, a node whose
        # proposals were all empty, a node at max_depth. Revisiting one backs up its value.
        self.dead: set[int] = set()
        self.kids: dict[int, list[Node]] = tree.children()
        self.depth: dict[int, int] = {}
        for node in tree.preorder():
            self.depth[node.id] = 0 if node.parent == -1 else self.depth[node.parent] + 1
        self.started = 0
        self.finished = 0
        self.correct = sum(1 for n in tree.nodes if n.terminal and n.correct)

    # -- the loop ---------------------------------------------------------------------
    async def run(self) -> Tree:
        """Run simulations, `cfg.parallel` at a time, until a stopping rule holds."""
        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(self._worker()) for _ in range(self.cfg.parallel)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raises the first failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stats = self.tree.stats
            stats.simulations += self.finished
            stats.seconds += time.perf_counter() - t0
            stats.correct_leaves = sum(1 for n in self.tree.nodes if n.terminal and n.correct)
        return self.tree

    def should_stop(self) -> bool:
        if self.started >= self.cfg.simulations:
            return True
        return self.cfg.enough_correct > 0 and self.correct >= self.cfg.enough_correct

    async def _worker(self) -> None:
        while not self.should_stop():
            self.started += 1
            await self.simulate()
            self.finished += 1
            if self.on_simulation is not None:
                self.on_simulation(self.finished)

    async def simulate(self) -> None:
        """One simulation: select (virtual loss on), expand or revisit, back up (loss off)."""
        while True:
            path = self._select()
            leaf = path[-1]
            busy = self.expanding.get(leaf.id)
            if busy is None:
                break
            # Another simulation is expanding this leaf: wait for its children, then choose again.
            self._release(path)
            await busy.wait()
        try:
            if leaf.terminal or leaf.id in self.dead:
                value = leaf.value
            else:
                value = await self._expand(leaf)
        finally:
            self._release(path)
        for node in path:
            node.value = min(1.0, max(0.0, (node.value * node.visits + value) / (node.visits + 1)))
            node.visits += 1

    # -- selection ----------------------------------------------------------------------
    def _select(self) -> list[Node]:
        node = self.tree.root
        path = [node]
        while self.kids[node.id]:
            node = select_child(node, self.kids[node.id], self.cfg.c_puct, self.pending)
            path.append(node)
        for n in path:
            self.pending[n.id] = self.pending.get(n.id, 0.0) + self.cfg.virtual_loss
        return path

    def _release(self, path: list[Node]) -> None:
        for n in path:
            left = self.pending.get(n.id, 0.0) - self.cfg.virtual_loss
            if left <= 1e-9:
                self.pending.pop(n.id, None)
            else:
                self.pending[n.id] = left

    # -- expansion ----------------------------------------------------------------------
    def _action(self, leaf: Node) -> tuple[str, int] | None:
        """The meta action that expands `leaf`: (kind of children, how many), or None."""
        cfg, d = self.cfg, self.depth[leaf.id]
        if d >= cfg.max_depth:
            return None
        if leaf.kind == "critic":
            return ("refine", cfg.branch) if cfg.refine else None
        if d >= cfg.max_depth - 1:
            return ("conclusion", cfg.branch)
        # A critic at d+1 needs room for its refine at d+2 and that refine's conclusion.
        if leaf.kind in ("step", "refine") and d + 3 <= cfg.max_depth and self.rng.random() < cfg.critic_rate:
            return ("critic", 1)  # a critique is not a choice point: one per criticized step
        if leaf.kind in ("step", "refine") and self.rng.random() < cfg.conclude_rate:
            return ("conclusion", cfg.branch)
        return ("step", cfg.branch)

    async def _expand(self, leaf: Node) -> float:
        """Add `leaf`'s children; returns the value this simulation backs up."""
        event = asyncio.Event()
        self.expanding[leaf.id] = event
        try:
            action = self._action(leaf)
            if action is None:
                self.dead.add(leaf.id)
                return leaf.value
            kind, n = action
            proposal = Proposal(parent=leaf.id, kind=kind, n=n, seed=self.rng.getrandbits(31))
            candidates = await self.policy.propose(self.tree, proposal)
            self.tree.stats.generated_tokens += sum(c.tokens for c in candidates)
            # An empty thought is not a step (and OpenLongCoT forbids it): drop it.
            candidates = [c for c in candidates if c.text.strip()]
            if not candidates:
                self.dead.add(leaf.id)
                return leaf.value
            values, estimates, terminal, correct = await self._evaluate(leaf, kind, candidates)
            priors = sibling_priors([c.logprob for c in candidates])
            for i, c in enumerate(candidates):
                child = self.tree.add(
                    leaf.id, kind, c.text, prior=priors[i], value=values[i], q_estimate=estimates[i],
                    terminal=terminal[i], correct=correct[i], tokens=c.tokens, logprob=c.logprob,
                )
                self.kids[leaf.id].append(child)
                self.kids[child.id] = []
                self.depth[child.id] = self.depth[leaf.id] + 1
                if kind == "critic" and not self.cfg.refine:
                    self.dead.add(child.id)
                if correct[i]:
                    self.correct += 1
            return sum(p * v for p, v in zip(priors, values, strict=True))
        finally:
            del self.expanding[leaf.id]
            event.set()

    async def _evaluate(
        self, leaf: Node, kind: str, candidates: list[Candidate]
    ) -> tuple[list[float], list[float | None], list[bool], list[bool | None]]:
        """Values, value-head estimates, terminal flags and verdicts of new children.

        Graded terminals take 1.0 / 0.0 and skip the value head; a critic makes no claim of
        its own and inherits its parent's value, so Q through it reflects its refinements.
        """
        k = len(candidates)
        gold = self.tree.answer
        terminal = [may_be_terminal(kind, c.text) for c in candidates]
        correct: list[bool | None] = [None] * k
        values: list[float | None] = [None] * k
        if kind == "critic":
            return [leaf.value] * k, [None] * k, terminal, correct
        if gold is not None:
            for i, c in enumerate(candidates):
                if terminal[i]:
                    correct[i] = bool(self.grader(c.text, gold))  # no final answer is never correct
                    values[i] = 1.0 if correct[i] else 0.0
        estimates: list[float | None] = [None] * k
        todo = [i for i in range(k) if values[i] is None]
        if todo:
            ev = await self.valuer.evaluate(
                self.tree, leaf, kind, [candidates[i] for i in todo], self.rng.getrandbits(31)
            )
            if len(ev.values) != len(todo):
                raise ValueError(f"the valuer returned {len(ev.values)} values for {len(todo)} candidates")
            self.tree.stats.generated_tokens += ev.tokens
            for i, v in zip(todo, ev.values, strict=True):
                estimates[i] = values[i] = min(1.0, max(0.0, float(v)))
        return [float(v) for v in values], estimates, terminal, correct  # type: ignore[arg-type]


async def run_search(
    tree: Tree, policy: Policy, valuer: Valuer, grader: Grader, cfg: SearchConfig, rng: Random,
    *, on_simulation: Callable[[int], None] | None = None,
) -> Tree:
    """Search `tree` in place until a stopping rule holds, then rate its nodes; returns it.

    `on_simulation(finished)` is called after each simulation (progress display)."""
    await TreeSearch(tree, policy, valuer, grader, cfg, rng, on_simulation).run()
    assign_ratings(tree)
    return tree
