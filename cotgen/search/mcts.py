"""The search loop: every simulation is one rollout to a final answer.

A simulation picks where to start (`_plan`), samples the rest of the solution from there in
one request (Policy.rollout), inserts its steps as a chain, merging each step into an
existing child with the same text, grades the answer (gold visible) or values it (gold
hidden), and backs the value up from the root to the chain's end. Where it starts:

1. the root, for the first `samples` simulations: the tree holds best-of-N's samples;
2. a critic, with its refine, on the estimated first error of a failed path, while the tree
   has fewer than `critics` of them: the refine rolls out to an answer like any node;
3. gold visible, `probe`: OmegaPRM's binary search over a failed path. The first error lies
   after the deepest step rated positive (a correct answer is reached through it) and at or
   before the first step rated negative (search.ratings); a rollout from the middle of the
   steps between, whose rating the tree lacks the evidence for, halves that span;
4. gold hidden, the root again while it has started fewer than `widen` x sqrt(simulations)
   rollouts (progressive widening): a fresh sample shares no prefix with the tree, which is
   what finds an answer the tree has not seen when a value head cannot tell a right prefix
   from a wrong one. With the gold the tree's values are verdicts and the probes place
   rollouts by them: there the widening cost solved problems (bench/search_quality.py);
5. otherwise down the tree by PUCT to a node that may start more rollouts (at most `branch`
   at an inner node); once none is left, the root again.

Visit accounting: a simulation adds one visit to every node from the root to the end of its
chain, so a leaf's visits count the rollouts that ended there (identical steps are one node),
and a node's visits are at least the sum of its children's (the difference: rollouts that
ended at it, which only an empty completion does).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from cotgen.search.config import SearchConfig
from cotgen.search.protocols import Candidate, Grader, Policy, Proposal, Rollout, Valuer
from cotgen.search.ratings import assign_ratings
from cotgen.search.select import select_child, sibling_priors
from cotgen.tree import Node, Tree, may_be_terminal, solution_steps


def normalized(text: str) -> str:
    """The text two steps are compared by: runs of whitespace as one space, trimmed."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Plan:
    """Where the next simulation starts: a rollout from `node`, or a critic on it."""

    action: str  # rollout | critic
    node: Node
    why: str  # root | critic | probe | puct (the bench counts them)


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
        self.kids: dict[int, list[Node]] = tree.children()
        self.depth: dict[int, int] = {}
        for node in tree.preorder():
            self.depth[node.id] = 0 if node.parent == -1 else self.depth[node.parent] + 1
        self.starts: dict[int, int] = {}  # rollouts started at a node, those in flight included
        self.flying: dict[int, int] = {}  # of those, the ones in flight
        self.confidence: dict[int, float | None] = {}  # Marco-o1 confidence of new nodes' texts
        self.keys: dict[int, str] = {n.id: normalized(n.text) for n in tree.nodes}  # what merging compares
        self.criticizing: set[int] = {n.parent for n in tree.nodes if n.kind == "critic"}
        self.started = 0
        self.finished = 0
        self.correct = sum(max(1, n.visits) for n in tree.nodes if n.terminal and n.correct)
        self.history: list[tuple[str, int]] = []  # per finished simulation: (Plan.why, id of its chain's end)

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

    @property
    def plans(self) -> Counter[str]:
        """Finished simulations by where they started (Plan.why)."""
        return Counter(why for why, _ in self.history)

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
        """One simulation: plan (virtual loss on its path), roll out or criticize, back up."""
        plan = self._plan()
        path = self.tree.path_to(plan.node.id)
        self._hold(path)
        try:
            if plan.action == "critic":
                chain = await self._criticize(plan.node)
            else:
                rollout = await self.policy.rollout(self.tree, plan.node, self.rng.getrandbits(31))
                self._spent(rollout.tokens, rollout.prompt_tokens)
                chain = self._insert(plan.node, rollout)
            value = await self._value(chain[-1] if chain else plan.node)
        finally:
            self._release(path)
            if plan.action == "rollout":
                self.flying[plan.node.id] -= 1
        for node in path + chain:
            node.value = min(1.0, max(0.0, (node.value * node.visits + value) / (node.visits + 1)))
            node.visits += 1
        end = chain[-1] if chain else plan.node
        self.history.append((plan.why, end.id))
        if chain and end.terminal and end.correct:
            self.correct += 1

    # -- where a simulation starts -------------------------------------------------------
    def _plan(self) -> Plan:
        root = self.tree.root
        if self.starts.get(root.id, 0) < self.cfg.samples:
            return self._start("rollout", root, "root")
        if self.tree.answer is not None and (self.cfg.critics > 0 or self.cfg.probe):
            assign_ratings(self.tree, self.cfg.negative_after, failed_ends=True)  # the estimates so far; redone at the end
            index = self.tree.by_id()
            spans = [self._span(leaf, index) for leaf in self._failed_leaves()]
            if self.cfg.critics > len(self.criticizing):
                for steps, _, hi in spans:
                    node = steps[hi]
                    if node.rating == "negative" and not node.terminal and node.id not in self.criticizing:
                        self.criticizing.add(node.id)
                        return Plan("critic", node, "critic")
            if self.cfg.probe:
                for steps, lo, hi in spans:
                    if hi - lo >= 2:
                        node = steps[(lo + hi) // 2]
                        if self._open(node, 1):
                            return self._start("rollout", node, "probe")
        if self.tree.answer is None and self.starts.get(root.id, 0) < self.cfg.widen * math.sqrt(self.started):
            return self._start("rollout", root, "root")  # progressive widening of the root
        node = self._descend()
        return self._start("rollout", node, "puct" if node.parent != -1 else "root")

    def _start(self, action: str, node: Node, why: str) -> Plan:
        self.starts[node.id] = self.starts.get(node.id, 0) + 1
        self.flying[node.id] = self.flying.get(node.id, 0) + 1
        return Plan(action, node, why)

    def _failed_leaves(self) -> list[Node]:
        """Leaves whose rollout ended wrong: a wrong answer, or no answer (cut off or not)."""
        return [n for n in self.tree.nodes
                if not self.kids[n.id] and n.kind in ("step", "refine")
                and (n.terminal and n.correct is False or not n.terminal)]

    def _span(self, leaf: Node, index: dict[int, Node]) -> tuple[list[Node], int, int]:
        """The failed path's steps (a refine in place of the step it replaces) and the span
        (lo, hi] its first error lies in, by the ratings so far: lo the deepest step rated
        positive (a correct answer is reached through it; -1: none), hi the first later step
        rated negative, or the path's last step. hi == lo + 1 places the error at steps[hi];
        a wider span holds steps whose rating the tree lacks the evidence for."""
        steps = solution_steps(self.tree.path_to(leaf.id, index))
        lo = max((i for i, s in enumerate(steps) if s.rating == "positive"), default=-1)
        hi = next((i for i in range(lo + 1, len(steps)) if steps[i].rating == "negative"), len(steps) - 1)
        return steps, lo, hi

    def _open(self, node: Node, limit: int) -> bool:
        """May a rollout start after `node`? Its text must be whole and not an answer, and
        fewer than `limit` rollouts may have started there."""
        if node.kind not in ("problem", "step", "refine") or node.terminal or node.truncated:
            return False
        if node.kind != "problem" and not self.kids[node.id]:
            return False  # a rollout that ended here without an answer: nothing to continue
        if self.depth[node.id] >= self.cfg.max_depth:
            return False
        return self.starts.get(node.id, 0) < limit

    def _descend(self) -> Node:
        """From the root by PUCT through nodes with room left below them, to the first that
        may start a rollout itself; the root when the whole tree is used up."""
        room: dict[int, bool] = {}
        for node in reversed(list(self.tree.preorder())):
            room[node.id] = (node.parent != -1 and self._open(node, self.cfg.branch)) or any(
                room[k.id] for k in self.kids[node.id])
        node = self.tree.root
        while True:
            if node.parent != -1 and self._open(node, self.cfg.branch):
                return node
            choices = [k for k in self.kids[node.id] if room[k.id]]
            if not choices:  # only at the root: a child with room has an open node below it
                return self.tree.root
            node = select_child(node, choices, self.cfg.c_puct, self.pending)

    def _hold(self, path: list[Node]) -> None:
        for n in path:
            self.pending[n.id] = self.pending.get(n.id, 0.0) + self.cfg.virtual_loss

    def _release(self, path: list[Node]) -> None:
        for n in path:
            left = self.pending.get(n.id, 0.0) - self.cfg.virtual_loss
            if left <= 1e-9:
                self.pending.pop(n.id, None)
            else:
                self.pending[n.id] = left

    def _spent(self, tokens: int, prompt_tokens: int) -> None:
        self.tree.stats.generated_tokens += tokens
        self.tree.stats.prompt_tokens += prompt_tokens

    # -- growing the tree ------------------------------------------------------------------
    def _insert(self, start: Node, rollout: Rollout) -> list[Node]:
        """The rollout's steps as a chain under `start`, each merged into a child with the
        same text where there is one; returns the chain's nodes (start excluded)."""
        steps = _capped(rollout.steps, self.cfg.max_depth - self.depth[start.id])
        chain: list[Node] = []
        parent = start
        for i, c in enumerate(steps):
            cut = rollout.truncated and i == len(steps) - 1
            node = self._child(parent, "step", c, truncated=cut)
            chain.append(node)
            parent = node
            if node.terminal:
                break
        return chain

    def _child(self, parent: Node, kind: str, c: Candidate, truncated: bool = False) -> Node:
        """`parent`'s child of `kind` with `c`'s text: the existing one with the same text
        (whitespace aside) and the same truncation, or a new node, graded if it answers."""
        key = normalized(c.text)
        for kid in self.kids[parent.id]:
            if kid.kind == kind and kid.truncated == truncated and self.keys[kid.id] == key:
                return kid
        terminal = not truncated and may_be_terminal(kind, c.text)
        correct = None
        if terminal and self.tree.answer is not None:
            correct = bool(self.grader(c.text, self.tree.answer))  # no final answer is never correct
        node = self.tree.add(parent.id, kind, c.text, terminal=terminal, correct=correct, tokens=c.tokens,
                             logprob=c.logprob, truncated=truncated, value=0.0)
        self.kids[parent.id].append(node)
        self.kids[node.id] = []
        self.depth[node.id] = self.depth[parent.id] + 1
        siblings = [k for k in self.kids[parent.id] if k.kind == kind]
        for kid, prior in zip(siblings, sibling_priors([k.logprob for k in siblings]), strict=True):
            kid.prior = prior
        self.confidence[node.id] = c.confidence
        self.keys[node.id] = key
        return node

    async def _criticize(self, step: Node) -> list[Node]:
        """A critic of `step` and, with `refine`, the step rewritten, rolled out to an answer."""
        seed = self.rng.getrandbits(31)
        critics = await self.policy.propose(self.tree, Proposal(step.id, "critic", 1, seed))
        self._spent(sum(c.tokens for c in critics), sum(c.prompt_tokens for c in critics))
        critics = [c for c in critics if c.text.strip()]
        if not critics:
            return []
        critic = self._child(step, "critic", critics[0])
        if not self.cfg.refine:
            return [critic]
        refines = await self.policy.propose(self.tree, Proposal(critic.id, "refine", 1, self.rng.getrandbits(31)))
        self._spent(sum(c.tokens for c in refines), sum(c.prompt_tokens for c in refines))
        refines = [c for c in refines if c.text.strip()]
        if not refines:
            return [critic]
        refine = self._child(critic, "refine", refines[0], truncated=refines[0].finish_reason == "length")
        chain = [critic, refine]
        if not refine.terminal and not refine.truncated:
            self.starts[refine.id] = self.starts.get(refine.id, 0) + 1
            rollout = await self.policy.rollout(self.tree, refine, self.rng.getrandbits(31))
            self._spent(rollout.tokens, rollout.prompt_tokens)
            chain += self._insert(refine, rollout)
        return chain

    async def _value(self, end: Node) -> float:
        """What the simulation backs up: the verdict on its answer (gold visible), the value
        head's estimate of it (gold hidden), 0 for a rollout that ended without one."""
        if not end.terminal:
            return 0.0
        if end.correct is not None:
            return 1.0 if end.correct else 0.0
        if end.q_estimate is None:
            parent = self.tree.nodes[end.parent]
            c = Candidate(text=end.text, tokens=end.tokens, logprob=end.logprob,
                          confidence=self.confidence.get(end.id))
            ev = await self.valuer.evaluate(self.tree, parent, end.kind, [c], self.rng.getrandbits(31))
            if len(ev.values) != 1:
                raise ValueError(f"the valuer returned {len(ev.values)} values for 1 candidate")
            self._spent(ev.tokens, 0)
            end.q_estimate = min(1.0, max(0.0, float(ev.values[0])))
        return end.q_estimate


def _capped(steps: list[Candidate], room: int) -> list[Candidate]:
    """At most `room` steps: those beyond are joined into the last one (max_depth)."""
    if len(steps) <= room:
        return steps
    room = max(1, room)
    head, tail = steps[: room - 1], steps[room - 1:]
    tokens = sum(c.tokens for c in tail)
    known = [c for c in tail if c.logprob is not None]
    logprob = sum(c.logprob * c.tokens for c in known) / max(1, sum(c.tokens for c in known)) if known else None
    joined = Candidate(text="\n\n".join(c.text for c in tail), tokens=tokens, logprob=logprob,
                       confidence=tail[-1].confidence, finish_reason=tail[-1].finish_reason)
    return [*head, joined]


async def run_search(
    tree: Tree, policy: Policy, valuer: Valuer, grader: Grader, cfg: SearchConfig, rng: Random,
    *, on_simulation: Callable[[int], None] | None = None,
) -> Tree:
    """Search `tree` in place until a stopping rule holds, then rate its nodes; returns it.

    `on_simulation(finished)` is called after each simulation (progress display)."""
    await TreeSearch(tree, policy, valuer, grader, cfg, rng, on_simulation).run()
    assign_ratings(tree, cfg.negative_after, failed_ends=True)
    return tree
