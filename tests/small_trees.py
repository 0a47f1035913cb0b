"""A small valid tree with every node kind, shared by the validate and export tests."""

from __future__ import annotations

from cotgen.tree import Tree


def make_tree(i: int) -> Tree:
    t = Tree.new(f"What is {i} + {i}?", str(2 * i))
    s = t.add(0, "step", f" We add {i} and {i}.", rating="positive", value=0.8, visits=3)
    c = t.add(s.id, "critic", "The addition is right.")
    t.add(c.id, "refine", f"It is {2 * i}.", rating="positive", value=0.9)
    t.add(s.id, "conclusion", f"The answer is \\boxed{{{2 * i}}}.", terminal=True, correct=True, rating="positive", value=1.0)
    return t
