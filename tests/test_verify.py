"""Answer extraction and grading: the tricky pairs a search meets."""

from __future__ import annotations

import threading

import pytest

from cotgen.tree import has_final_answer
from cotgen.verify import Grade, extract_answer, grade, normalize_gold


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so the total is \\boxed{42}.", "42"),
        ("nested: \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}"),
        ("first \\boxed{3}, then on reflection \\boxed{5}", "5"),
        ("\\fbox{7} is it", "7"),
        ("hence $\\boxed 5$.", "5"),
        ("escaped braces \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("Janet makes 9 * 2 = 18.\n#### 18", "18"),
        ("#### 1,000\n", "1,000"),
        ("So the answer is 12.", "12"),
        ("Thus the final answer is $\\frac{3}{4}$. Next, we", "\\frac{3}{4}"),
        ("The answer is: 18 dollars.", "18"),
        ("The answer is **7**", "7"),
        ("the answer is 3.5", "3.5"),
        # unfinished: no final answer at all, not the last number
        ("First, 16 - 3 - 4 = 9 eggs. Then 9 * 2 = 18", None),
        ("the box was cut off: \\boxed{12", None),
        ("an empty box \\boxed{}", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_truncated_last_box_falls_back_to_the_last_complete_one():
    assert extract_answer("\\boxed{4} wait, maybe \\boxed{\\frac{1}{") == "4"


@pytest.mark.parametrize(
    ("text", "gold", "correct"),
    [
        ("\\boxed{0.5}", "\\frac{1}{2}", True),
        ("\\boxed{\\frac{1}{2}}", "0.5", True),
        ("\\boxed{\\dfrac12}", "\\frac{1}{2}", True),
        ("\\boxed{1,000}", "1000", True),
        ("\\boxed{1000}", "1,000", True),
        ("#### 1,000", "1000", True),
        ("\\boxed{x=3}", "3", True),
        ("\\boxed{3}", "x = 3", True),
        ("\\boxed{50\\%}", "50", True),
        ("\\boxed{50}", "50\\%", True),
        ("\\boxed{(1, 2]}", "\\left(1,2\\right]", True),
        ("\\boxed{[1, 2]}", "(1,2)", False),
        ("\\boxed{3, 2}", "2, 3", True),
        ("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt{2}}{2}", True),
        ("\\boxed{90^\\circ}", "90", True),
        ("\\boxed{\\text{(C)}}", "C", True),
        ("\\boxed{7}", "8", False),
        ("\\boxed{-4}", "4", False),
        # Two boxes close together: math-verify alone would merge them into {3, 5}.
        ("\\boxed{3} or rather \\boxed{5}", "5", True),
        ("\\boxed{3} or rather \\boxed{5}", "3", False),
        ("\\fbox{12}", "12", True),
        ("She makes 18 dollars.\n#### 72", "72", True),
        ("She makes 18 dollars.\n#### 72", "18", False),
        ("So the answer is 18 dollars.", "18", True),
        ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", True),
        ("\\boxed{\\text{Evelyn}}", "\\text{Bob}", False),
    ],
)
def test_grade_pairs(text, gold, correct):
    result = grade(text, gold)
    assert result.correct is correct, result
    assert result.answer == extract_answer(text)


def test_unfinished_text_is_never_correct_even_when_its_last_number_matches():
    assert grade("16 - 3 - 4 = 9, and 9 * 2 = 18", "18") == Grade(correct=None, answer=None)


def test_no_gold_gives_no_verdict_but_keeps_the_answer():
    assert grade("\\boxed{4}", None) == Grade(correct=None, answer="4")


def test_gold_in_gsm8k_and_math_form_is_normalized():
    assert normalize_gold("He pays 500*2=<<500*2=1000>>1000\n#### 1,000") == "1000"
    assert normalize_gold("so it is $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert normalize_gold(" \\frac{14}{3} ") == "\\frac{14}{3}"
    assert normalize_gold("") is None
    assert grade("\\boxed{1000}", "long solution ...\n#### 1,000").correct is True


def test_a_pathological_answer_is_wrong_not_a_crash():
    # A huge power: sympy would take very long to expand; any failure counts as wrong.
    result = grade("\\boxed{9^{9^{9^{9}}}}", "3", timeout=1)
    assert result.correct is False
    assert result.answer == "9^{9^{9^{9}}}"


def test_unparseable_answer_is_compared_as_text():
    assert grade("\\boxed{\\text{north east}}", "\\text{North East}").correct is True
    assert grade("\\boxed{}{}", "1").correct is None


def test_grading_outside_the_main_thread_works():
    results: list[Grade] = []
    errors: list[BaseException] = []

    def work():
        try:
            results.extend(grade(text, gold) for text, gold in [("\\boxed{\\frac{2}{4}}", "0.5"), ("\\boxed{3}", "4")])
        except BaseException as exc:  # the test reports whatever escaped
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == []
    assert [r.correct for r in results] == [True, False]


@pytest.mark.parametrize(
    "text",
    ["\\boxed{4}", "\\fbox{4}", "#### 4", "So the answer is 4."],
)
def test_every_form_the_tree_calls_final_is_extracted(text):
    # tree.has_final_answer decides terminality; the grader must find what it found.
    assert has_final_answer(text)
    assert extract_answer(text) == "4"
