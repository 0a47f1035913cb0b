"""Trees for the view tests: a small hand-built one with known ids, and big generated ones."""

from __future__ import annotations

import random

from cotgen.tree import Tree


def small_tree() -> Tree:
    """A graded tree whose best correct path is 0-1-3-4.

        0 problem  What is 2 + 3 * 4?
        ├─ 1 step  First, 3 * 4 = 12.
        │  ├─ 3 step  Then 2 + 12 = 14.
        │  │  └─ 4 conclusion  \\boxed{14}   correct
        │  └─ 7 step  Then 12 - 2 = 10.
        └─ 2 step  First, 2 + 3 = 5.
           ├─ 5 conclusion  \\boxed{20}   wrong
           └─ 6 critic  Multiplication comes first.
    """
    t = Tree.new("What is 2 + 3 * 4?", answer="14", model="tiny")
    t.add(0, "step", "First, 3 * 4 = 12.", value=0.7, visits=4, rating="positive", prior=0.6, tokens=9)
    t.add(0, "step", "First, 2 + 3 = 5.", value=0.2, visits=3, rating="negative", prior=0.4, tokens=9)
    t.add(1, "step", "Then 2 + 12 = 14.", value=0.9, visits=2, rating="positive", q_estimate=0.8, tokens=8)
    t.add(3, "conclusion", "So the answer is \\boxed{14}.", value=1.0, visits=1, rating="positive",
          terminal=True, correct=True, tokens=10)
    t.add(2, "conclusion", "So the answer is \\boxed{20}.", value=0.0, visits=1, rating="negative",
          terminal=True, correct=False, tokens=10)
    t.add(2, "critic", "Multiplication comes first, so 2 + 3 is not the first step.", tokens=14)
    t.add(1, "step", "Then 12 - 2 = 10.", value=0.1, visits=1, rating="negative", tokens=8)
    t.check()
    return t


def big_tree(n: int, seed: int = 0) -> Tree:
    """A sound tree of exactly `n` nodes shaped like a search's: up to 4 children a node,
    critics under low-valued steps with a refine under each, conclusions graded."""
    rng = random.Random(seed)
    t = Tree.new(f"Generated problem {seed}: how many ways can $n$ items be chosen?", answer="42")
    open_ids = [0]
    while len(t.nodes) < n:
        parent = t.nodes[rng.choice(open_ids[-64:])]
        kind = "step"
        if parent.kind == "critic":
            kind = "refine"
        elif parent.kind in ("step", "refine") and parent.value < 0.3 and rng.random() < 0.5:
            kind = "critic"
        elif parent.kind != "problem" and rng.random() < 0.15 and len(t.nodes) < n:
            kind = "conclusion"
        text = f"Node {len(t.nodes)}: we consider $\\binom{{n}}{{k}}$ = {rng.randint(2, 99)} cases."
        if kind == "conclusion":
            good = rng.random() < 0.4
            node = t.add(parent.id, kind, f"So the answer is \\boxed{{{42 if good else 7}}}.",
                         value=rng.random(), visits=1, terminal=True, correct=good,
                         rating="positive" if good else "negative")
        else:
            node = t.add(parent.id, kind, text, value=rng.random(), visits=rng.randint(1, 20),
                         rating="unknown" if kind == "critic" else rng.choice(("positive", "negative")),
                         prior=rng.random(), tokens=rng.randint(5, 60))
            open_ids.append(node.id)
        if len([c for c in t.nodes if c.parent == parent.id]) >= 4 and parent.id in open_ids:
            open_ids.remove(parent.id)
        if parent.kind == "critic" and parent.id in open_ids:
            open_ids.remove(parent.id)  # a critic has one refine
    t.check()
    return t
