"""The Tree record: building, navigation, rows, and every invariant's message."""

from __future__ import annotations

import pytest

from cotgen.errors import InvalidTree
from cotgen.tree import Node, Tree, broken_invariants, has_final_answer, may_be_terminal, tree_id


def small_tree() -> Tree:
    t = Tree.new("What is 2+3?", "5", source="test", model="tiny")
    s1 = t.add(0, "step", "2+3 = 5.", logprob=-0.5)
    c = t.add(s1.id, "critic", "The sum is right.")
    t.add(c.id, "refine", "Adding 2 and 3 gives 5.")
    t.add(s1.id, "conclusion", "The answer is \\boxed{5}.", terminal=True, correct=True)
    return t


def test_id_is_stable_and_depends_on_problem_and_answer():
    assert tree_id("q", "1") == tree_id("q", "1")
    assert tree_id("q", "1") != tree_id("q", "2")
    assert tree_id("q", None) != tree_id("q", "")
    assert Tree.new("q", "1").id == tree_id("q", "1")


def test_navigation():
    t = small_tree()
    assert [n.id for n in t.preorder()] == [0, 1, 2, 3, 4]
    assert [n.id for n in t.path_to(3)] == [0, 1, 2, 3]
    assert [n.id for n in t.children()[1]] == [2, 4]
    assert sorted(n.id for n in t.leaves()) == [3, 4]


def test_row_roundtrip():
    t = small_tree()
    t.config = {"c_puct": 1.5, "branch": 3}
    back = Tree.from_row(t.to_row())
    assert back == t


def test_from_row_rejects_non_tree():
    with pytest.raises(InvalidTree, match="not a tree record"):
        Tree.from_row({"problem": "x"})


def test_sound_tree_has_no_problems():
    small_tree().check()


def broken(mutate) -> list[str]:
    t = small_tree()
    mutate(t)
    return broken_invariants(t)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda t: t.nodes.clear(), "no nodes"),
        (lambda t: setattr(t.nodes[2], "parent", -1), "exactly one root"),
        (lambda t: setattr(t.nodes[0], "id", 9), "first node must be the root"),
        (lambda t: setattr(t.nodes[0], "kind", "step"), "root must have kind 'problem'"),
        (lambda t: setattr(t.nodes[3], "id", 2), "duplicate id"),
        (lambda t: setattr(t.nodes[1], "kind", "thought"), "unknown kind 'thought'"),
        (lambda t: setattr(t.nodes[1], "rating", "unknow"), "unknown rating 'unknow'"),
        (lambda t: setattr(t.nodes[1], "parent", 7), "parent 7 does not exist before it"),
        (lambda t: setattr(t.nodes[1], "parent", 3), "parent 3 does not exist before it"),
        (lambda t: setattr(t.nodes[2], "parent", 0), "critic's parent must be a step"),
        (lambda t: setattr(t.nodes[3], "parent", 1), "refine node's parent must be a critic"),
        (lambda t: setattr(t.nodes[1], "terminal", True), "terminal nodes must be conclusions"),
        (lambda t: setattr(t.nodes[1], "correct", False), "'correct' is set on a node that is not terminal"),
        (lambda t: setattr(t.nodes[2], "rating", "positive"), "critic nodes are always rated 'unknown'"),
        (lambda t: setattr(t.nodes[1], "value", 1.5), "outside [0, 1]"),
        (lambda t: setattr(t.nodes[1], "visits", -1), "negative visit count"),
        (lambda t: t.nodes.append(Node(id=5, parent=0, kind="problem", text="again")), "only the root may"),
    ],
)
def test_each_invariant_has_a_message(mutate, expected):
    problems = broken(mutate)
    assert any(expected in p for p in problems), problems


def test_check_raises_with_all_problems():
    t = small_tree()
    t.nodes[1].value = 2.0
    t.nodes[2].rating = "negative"
    with pytest.raises(InvalidTree) as exc:
        t.check()
    assert "outside [0, 1]" in str(exc.value) and "critic" in str(exc.value)


def test_terminal_step_with_final_answer_is_allowed():
    t = Tree.new("q", "4")
    t.add(0, "step", "So 2+2 = \\boxed{4}", terminal=True, correct=True)
    t.check()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{4}", True),
        ("\\fbox{x}", True),
        ("He pays 5\n#### 72", True),
        ("Thus the answer is 12.", True),
        ("We add 2 and 2 next.", False),
        ("so the total is \\boxed{12", False),  # cut off mid-answer: the grader finds nothing
        ("", False),
    ],
)
def test_has_final_answer(text, expected):
    assert has_final_answer(text) is expected
    assert may_be_terminal("step", text) is expected and may_be_terminal("refine", text) is expected
    assert may_be_terminal("conclusion", text) and not may_be_terminal("critic", text)
