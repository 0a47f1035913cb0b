"""builtin:arith read back into operations, and the exact step-truth labeller."""

from __future__ import annotations

import pytest

from cotgen.problems import load_problems
from cotgen.reasoner.arith import label_path, parse_problem, parse_step

Q0 = ("Ava has 12 apples. Ava buys 3 boxes with 5 apples in each box, then gives 7 apples to Ben. "
      "How many apples does Ava have now?")
Q3 = "Start with 9. Multiply it by 8, add 10, then subtract 2. What number do you get?"


@pytest.mark.parametrize("seed", [0, 7, 1000])
def test_every_builtin_question_is_understood_and_its_solution_is_right(seed):
    for p in load_problems("builtin:arith", seed=seed, limit=200):
        arith = parse_problem(p.question)
        assert arith is not None, p.question
        assert str(arith.answer) == p.answer
        steps = arith.solution()
        assert steps[-1] == f"The answer is \\boxed{{{p.answer}}}."
        assert all(v.correct for v in label_path(p.question, steps)), steps


def test_solution_reads_one_operation_per_step():
    assert parse_problem(Q0).solution() == ["3 * 5 = 15", "12 + 15 = 27", "27 - 7 = 20", "The answer is \\boxed{20}."]


def test_parse_step():
    assert parse_step("9 * 8 = 72").c == 72
    assert parse_step(" 9 x 8 = 72.").op == "*"
    assert parse_step("9 * 8 is 72") is None


def reasons(question, steps):
    return [(v.correct, v.reason) for v in label_path(question, steps)]


def test_hand_made_paths():
    ok = (True, "ok")
    # Wrong arithmetic; the steps after it follow from what was written, so they are right
    # locally (ProcessBench: the earliest wrong step is the one that counts).
    assert reasons(Q3, ["9 * 8 = 71", "71 + 10 = 81", "81 - 2 = 79", "The answer is \\boxed{79}."]) == [
        (False, "arithmetic"), ok, ok, ok]
    # A step that uses a number it has no business using.
    assert reasons(Q3, ["9 * 8 = 72", "72 + 9 = 81"]) == [ok, (False, "operand")]
    # Addition commutes, subtraction does not.
    assert reasons(Q0, ["5 * 3 = 15", "15 + 12 = 27", "7 - 27 = -20"]) == [ok, ok, (False, "operand")]
    # An answer before the last operation, a wrong answer, text that is no operation.
    assert reasons(Q3, ["9 * 8 = 72", "The answer is \\boxed{72}."]) == [ok, (False, "early answer")]
    assert reasons(Q3, ["9 * 8 = 72", "72 + 10 = 82", "82 - 2 = 80", "The answer is \\boxed{81}."])[-1] == (False, "answer")
    assert reasons(Q3, ["Let us think about it."]) == [(False, "unparsed")]
    # A conclusion finishes the plan in one go: each of its operations must hold.
    assert reasons(Q3, ["9 * 8 = 72", "Then 72 + 10 = 82, 82 - 2 = 80. The answer is \\boxed{80}."]) == [ok, ok]
    assert reasons(Q3, ["9 * 8 = 72", "Then 72 + 10 = 83, 83 - 2 = 81. The answer is \\boxed{81}."])[-1] == (
        False, "arithmetic")
    assert reasons(Q3, ["9 * 8 = 72", "72 + 10 = 82", "82 - 2 = 80", "The last step gives 80. The answer is \\boxed{80}."])[-1] == ok
    assert reasons(Q3, ["9 * 8 = 72", "Then 72 + 10 = 82. The answer is \\boxed{82}."])[-1] == (False, "early answer")
    # Right arithmetic, wrong operation.
    assert reasons(Q3, ["9 + 8 = 17"]) == [(False, "operand")]


def test_label_path_refuses_other_questions():
    with pytest.raises(ValueError, match="not a builtin:arith question"):
        label_path("What is 2 + 2?", ["2 + 2 = 4"])
