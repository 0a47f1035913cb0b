"""Paths through a tree: the best correct path, the journey through refuted branches, final answers."""

from __future__ import annotations

import pytest

from cotgen.formats.paths import (
    REFLECTION,
    REFLECTION_KIND,
    best_correct_path,
    journey_path,
    reasoning_nodes,
)
from cotgen.tree import Tree


def branching() -> Tree:
    """Two correct leaves and a refuted first step with a critic.

        0 problem
        ├─ 1 step  2*66 = 132        value 0.9  positive
        │  └─ 5 step  4*132 = 528    value 1.0
        │     └─ 6 conclusion \\boxed{528}   correct
        └─ 2 step  66+2 = 68         value 0.1  negative
           └─ 3 critic
              └─ 4 refine 2*66 = 132 value 0.8
                 └─ 7 step  #### 528          correct
    """
    t = Tree.new("Felix drives 66 mph; twice as fast for 4 hours. Miles?", answer="528")
    t.add(0, "step", "2*66 = 132 mph.", value=0.9, rating="positive")  # 1
    t.add(0, "step", "66+2 = 68 mph.", value=0.1, rating="negative")  # 2
    t.add(2, "critic", "Twice means times 2.")  # 3
    t.add(3, "refine", "2*66 = 132 mph.", value=0.8, rating="positive")  # 4
    t.add(1, "step", "4*132 = 528 miles.", value=1.0, rating="positive")  # 5
    t.add(5, "conclusion", "He drives \\boxed{528} miles.", value=1.0, terminal=True, correct=True)  # 6
    t.add(4, "step", "4*132 = 528\n#### 528", value=1.0, terminal=True, correct=True)  # 7
    t.check()
    return t


def ids(path):
    return None if path is None else [n.id for n in path]


def test_best_correct_path_takes_the_highest_mean_value():
    assert ids(best_correct_path(branching())) == [0, 1, 5, 6]


def test_best_correct_path_goes_through_a_critic_to_its_refine_but_leaves_the_critic_out():
    t = branching()
    t.nodes[6].correct = False
    path = best_correct_path(t)
    assert ids(path) == [0, 2, 4, 7]
    assert all(n is t.nodes[n.id] for n in path)  # the tree's own nodes
    assert ids(reasoning_nodes(path)) == [4, 7]  # the refine replaces the step it rewrote


def test_best_correct_path_ties_go_to_the_shorter_path_then_lower_ids():
    t = Tree.new("p", answer="1")
    t.add(0, "step", "a", value=1.0)  # 1
    t.add(1, "step", "\\boxed{1}", value=1.0, terminal=True, correct=True)  # 2
    t.add(0, "step", "\\boxed{1}", value=1.0, terminal=True, correct=True)  # 3
    t.add(0, "step", "\\boxed{1}", value=1.0, terminal=True, correct=True)  # 4
    assert ids(best_correct_path(t)) == [0, 3]


def test_best_correct_path_is_none_without_a_correct_terminal():
    t = branching()
    t.nodes[6].correct = t.nodes[7].correct = False
    assert best_correct_path(t) is None
    assert journey_path(t) is None
    assert best_correct_path(Tree.new("p")) is None


def test_journey_walks_a_refuted_sibling_branch_before_the_correct_path():
    t = branching()
    journey = journey_path(t)
    assert [(n.id, n.kind) for n in journey] == [
        (0, "problem"), (2, "step"), (3, "critic"), (-1, REFLECTION_KIND),
        (1, "step"), (5, "step"), (6, "conclusion"),
    ]
    reflection = journey[3]
    assert (reflection.text, reflection.parent) == (REFLECTION, 3)
    assert reflection not in t.nodes


def test_journey_with_no_refuted_branch_is_the_best_path():
    t = branching()
    t.nodes[2].rating, t.nodes[2].value = "positive", 0.9
    assert ids(journey_path(t)) == [0, 1, 5, 6]


def test_journey_tells_a_fix_made_on_the_path_as_wrong_step_critic_reflection_refine():
    t = branching()
    t.nodes[6].correct = False
    assert ids(journey_path(t)) == [0, 2, 3, -1, 4, 7]


def test_journey_finds_a_refuted_step_deeper_in_an_alternative_and_keeps_to_the_budget():
    t = branching()
    t.add(1, "step", "4+132 = 136.", value=0.5, rating="positive")  # 8: fine, but its child is wrong
    t.add(8, "step", "So 136 miles.", value=0.0, rating="negative")  # 9
    t.add(9, "critic", "Distance is speed times time.")  # 10
    assert ids(journey_path(t, max_branches=1)) == [0, 2, 3, -1, 1, 5, 6]
    assert ids(journey_path(t, max_branches=2)) == [0, 2, 3, -1, 1, 8, 9, 10, -1, 5, 6]
    assert ids(journey_path(t, max_branches=5)) == ids(journey_path(t, max_branches=2))
    assert ids(journey_path(t, max_branches=0)) == [0, 1, 5, 6]


def test_journey_skips_a_refuted_step_without_a_critic():
    t = branching()
    t.nodes[3].kind = "step"  # node 2 no longer has a critic child
    t.nodes[3].rating = "negative"
    assert ids(journey_path(t)) == [0, 1, 5, 6]


def test_journey_rejects_a_negative_budget():
    with pytest.raises(ValueError, match="max_branches"):
        journey_path(branching(), max_branches=-1)


@pytest.mark.parametrize(("text", "answer"), [
    ("So the answer is \\boxed{528}.", "528"),
    ("\\boxed{\\frac{1}{2}} then \\boxed{ \\frac{3}{4} }", "\\frac{3}{4}"),
    ("\\fbox{x^{2}}", "x^{2}"),
    ("\\boxed {7}", "7"),
    ("Natalia sold 72 clips.\n#### 72", "72"),
    ("#### 1,234 \n", "1,234"),
    ("Thus the answer is $42$.", "42"),
    ("The answer is: 5", "5"),
    ("\\boxed{unclosed", None),
    ("no answer here", None),
    ("", None),
])
def test_final_answer(text, answer):
    # marco and sft take the output from the grader's own extractor
    from cotgen.verify import extract_answer

    assert extract_answer(text) == answer
