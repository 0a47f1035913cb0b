"""The prm format: exact rows from hand-built trees, options, row checks, TRL's contract."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from trees import all_wrong, load_with_datasets, order_of_operations, root_only, ungraded_three_way

from cotgen.errors import UsageError
from cotgen.formats import ExportRefused, make_format
from cotgen.formats.prm import PRMFormat, label_values
from cotgen.tree import Tree

PROBLEM = "What is 2 + 3 * 4?"
GOOD_PATH = {
    "prompt": PROBLEM,
    "completions": ["First, 3 * 4 = 12.", "Then 2 + 12 = 14.", "So the answer is \\boxed{14}."],
    "labels": [True, True, True],
}
UNFINISHED_PATH = {
    "prompt": PROBLEM,
    "completions": ["First, 3 * 4 = 12.", "Then 12 - 2 = 10."],
    "labels": [True, False],
}
WRONG_PATH = {
    "prompt": PROBLEM,
    "completions": ["First, 2 + 3 = 5.", "Then 5 * 4 = 20.", "So the answer is \\boxed{20}."],
    "labels": [False, False, False],
}
# Through the critic: the refine takes the place of the criticized step.
REFINED_PATH = {
    "prompt": PROBLEM,
    "completions": ["First, 3 * 4 = 12, and 2 + 12 = 14.", "The answer is \\boxed{14}."],
    "labels": [True, True],
}


def test_terminal_paths_give_exact_rows():
    rows = list(PRMFormat().export(order_of_operations()))
    assert rows == [GOOD_PATH, WRONG_PATH, REFINED_PATH]


def test_all_paths_add_the_unfinished_one():
    rows = list(PRMFormat(paths="all").export(order_of_operations()))
    assert rows == [GOOD_PATH, UNFINISHED_PATH, WRONG_PATH, REFINED_PATH]


def test_label_values_are_ground_truth_and_exclude_own_critics():
    values = label_values(order_of_operations())
    # Step 2 (wrong) has value 0.6 from the search and a fixed refine under its critic:
    # only its own continuation (one wrong leaf) counts for it.
    assert values[2] == 0.0
    assert values[0] == pytest.approx(2 / 3)  # the root reaches all three graded leaves
    assert values[7] == 1.0  # the critic's subtree holds the refined, correct leaf
    assert values[10] == 0.2  # no graded leaf below: the search's value
    assert [values[i] for i in (1, 3, 4, 5, 6, 8, 9)] == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]


def test_label_threshold_moves_labels_of_ungraded_values():
    tree = ungraded_three_way()
    assert list(PRMFormat().export(tree)) == [
        {"prompt": "Simplify 6/8.", "completions": ["6/8 = 0.75 = 3/4.", "So 6/8 = \\boxed{3/4}."],
         "labels": [True, True]},
    ]
    assert [r["labels"] for r in PRMFormat(label_threshold=0.6).export(tree)] == [[False, False]]
    assert list(PRMFormat(paths="all", label_threshold=0.6).export(tree)) == [
        {"prompt": "Simplify 6/8.", "completions": ["6/8 = 3/4."], "labels": [True]},
        {"prompt": "Simplify 6/8.", "completions": ["6/8 = 2/3."], "labels": [False]},
        {"prompt": "Simplify 6/8.", "completions": ["6/8 = 0.75 = 3/4.", "So 6/8 = \\boxed{3/4}."],
         "labels": [False, False]},
    ]


def test_wrong_only_tree_still_exports_its_negative_path():
    assert list(PRMFormat().export(all_wrong())) == [
        {"prompt": "What is 1 + 1?", "completions": ["1 + 1 = 3.", "The answer is \\boxed{3}."],
         "labels": [False, False]},
    ]


def test_refusals_name_the_reason():
    with pytest.raises(ExportRefused, match="no terminal leaf"):
        list(PRMFormat().export(root_only()))
    with pytest.raises(ExportRefused, match="no leaf"):
        list(PRMFormat(paths="all").export(root_only()))
    blank = Tree.new("What is 3 + 3?", answer="6")
    blank.add(0, "step", "  \n")
    blank.add(1, "conclusion", "\\boxed{6}", terminal=True, correct=True)
    with pytest.raises(ExportRefused, match="empty step"):
        list(PRMFormat().export(blank))


def test_a_path_with_an_empty_step_is_skipped_the_others_kept():
    tree = order_of_operations()
    tree.nodes[5].text = ""
    assert list(PRMFormat().export(tree)) == [GOOD_PATH, REFINED_PATH]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"paths": "leaves"}, "paths must be one of terminal, all"),
        ({"label_threshold": 1.5}, r"label_threshold must be within \[0, 1\]"),
        ({"label_threshold": -0.1}, r"label_threshold must be within \[0, 1\]"),
        ({"label_threshold": "high"}, "label_threshold must be a number"),
        ({"label_threshold": True}, "label_threshold must be a number"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        PRMFormat(**options)


def test_make_format_maps_cli_options():
    fmt = make_format("prm", paths="all", label_threshold=0.7, margin=None)
    assert fmt == PRMFormat(paths="all", label_threshold=0.7)
    with pytest.raises(UsageError, match="--margin does not apply to --format prm"):
        make_format("prm", margin=0.5)
    with pytest.raises(UsageError, match="--format prm: paths must be"):
        make_format("prm", paths="some")


def test_exported_rows_pass_their_own_check():
    fmt = PRMFormat(paths="all")
    for tree in (order_of_operations(), ungraded_three_way(), all_wrong()):
        for row in fmt.export(tree):
            assert fmt.check(row) == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"completions": ["a"], "labels": [True]}, "prompt must be a string, not missing"),
        ({"prompt": 3, "completions": ["a"], "labels": [True]}, "prompt must be a string, not int"),
        ({"prompt": " ", "completions": ["a"], "labels": [True]}, "prompt is empty"),
        ({"prompt": "p", "completions": "a", "labels": [True]}, "completions must be a list of strings, not str"),
        ({"prompt": "p", "completions": [], "labels": []}, "completions is empty"),
        ({"prompt": "p", "completions": ["a", 2], "labels": [True, True]}, r"completions\[1\] must be a string, not int"),
        ({"prompt": "p", "completions": ["a", ""], "labels": [True, True]}, r"completions\[1\] is empty"),
        ({"prompt": "p", "completions": ["a"]}, "labels must be a list of booleans, not missing"),
        ({"prompt": "p", "completions": ["a"], "labels": [1]}, r"labels\[0\] must be true or false, not 1"),
        ({"prompt": "p", "completions": ["a", "b"], "labels": [True]}, "1 labels for 2 completions: one label per step"),
    ],
)
def test_check_reports_each_problem(row, message):
    findings = PRMFormat().check(row)
    assert [f.severity for f in findings] == ["error"]
    assert re.search(message, findings[0].message), findings


def test_arrow_types_follow_trls_stepwise_supervision_contract():
    """TRL's last PRM contract: prompt str, completions list[str], labels list[bool]."""
    rows = list(PRMFormat().export(order_of_operations()))
    expected = pa.schema([
        ("prompt", pa.string()),
        ("completions", pa.list_(pa.string())),
        ("labels", pa.list_(pa.bool_())),
    ])
    assert PRMFormat.arrow_schema() == expected
    # A writer that only infers types from the rows gets the same columns.
    assert pa.Table.from_pylist(rows).schema == expected
    for row in rows:
        assert len(row["labels"]) == len(row["completions"])


def test_loads_with_datasets(tmp_path, monkeypatch):
    rows = list(PRMFormat(paths="all").export(order_of_operations()))
    loaded = load_with_datasets(rows, PRMFormat.arrow_schema(), tmp_path, monkeypatch)
    assert loaded == rows


def test_labels_follow_the_ratings_where_a_step_has_one():
    # One rollout right, three wrong through "s": its share is 0.25, but a correct answer is
    # reached through it, so the search rates it positive (the hard rule).
    t = Tree.new("What is 2 + 2?", "4", config={"samples": 4})
    s = t.add(0, "step", "2 + 2 = 4", rating="positive", visits=4)
    t.add(s.id, "step", "\\boxed{4}", terminal=True, correct=True, rating="positive", visits=1)
    bad = t.add(s.id, "step", "so 4 + 1 = 5", rating="negative", visits=3)
    t.add(bad.id, "step", "\\boxed{5}", terminal=True, correct=False, rating="negative", visits=3)
    odd = t.add(s.id, "step", "maybe", rating="unknown", visits=1)  # unknown: its share decides
    t.add(odd.id, "step", "\\boxed{4}", terminal=True, correct=True, rating="positive", visits=1)
    rows = {tuple(r["completions"]): r["labels"] for r in PRMFormat().export(t)}
    assert rows[("2 + 2 = 4", "\\boxed{4}")] == [True, True]
    assert rows[("2 + 2 = 4", "so 4 + 1 = 5", "\\boxed{5}")] == [True, False, False]
    assert rows[("2 + 2 = 4", "maybe", "\\boxed{4}")] == [True, True, True]
    share = {tuple(r["completions"]): r["labels"] for r in PRMFormat(labels="share").export(t)}
    assert share[("2 + 2 = 4", "so 4 + 1 = 5", "\\boxed{5}")] == [False, False, False]  # 2/5 < 0.5
    with pytest.raises(UsageError, match="labels must be one of ratings, share"):
        make_format("prm", labels="votes")
