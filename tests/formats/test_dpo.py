"""The dpo format: exact pairs from hand-built trees, options, row checks, datasets loading."""

from __future__ import annotations

import pyarrow as pa
import pytest
from trees import all_wrong, load_with_datasets, order_of_operations, root_only, ungraded_three_way

from cotgen.errors import UsageError
from cotgen.formats import ExportRefused, make_format
from cotgen.formats.dpo import DPOFormat

PROBLEM = "What is 2 + 3 * 4?"
FIRST_STEP_PAIR = {
    "prompt": "What is 2 + 3 * 4?\n\n",
    "chosen": "First, 3 * 4 = 12.",
    "rejected": "First, 2 + 3 = 5.",
}
SECOND_STEP_PAIR = {
    "prompt": "What is 2 + 3 * 4?\n\nFirst, 3 * 4 = 12.\n\n",
    "chosen": "Then 2 + 12 = 14.",
    "rejected": "Then 12 - 2 = 10.",
}


def test_sibling_steps_give_exact_pairs():
    assert list(DPOFormat().export(order_of_operations())) == [FIRST_STEP_PAIR, SECOND_STEP_PAIR]


def test_conclusions_and_refines_pair_with_their_own_kind():
    tree = order_of_operations()
    bad_refine = tree.add(7, "refine", "First, 2 + 3 * 4 = 5 * 4 = 20.", value=0.9)  # 11
    tree.add(bad_refine.id, "conclusion", "So \\boxed{20}.", terminal=True, correct=False)
    tree.add(3, "conclusion", "So the answer is \\boxed{20}.", value=0.8, terminal=True, correct=False)  # 13
    tree.nodes[10].value = 0.1  # step 3 drops to 1/2 beside it; keep the step pair clear of the margin
    tree.check()
    assert list(DPOFormat().export(tree)) == [
        FIRST_STEP_PAIR,
        SECOND_STEP_PAIR,
        {
            "prompt": "What is 2 + 3 * 4?\n\nFirst, 3 * 4 = 12.\n\nThen 2 + 12 = 14.\n\n",
            "chosen": "So the answer is \\boxed{14}.",
            "rejected": "So the answer is \\boxed{20}.",
        },
        # Two rewrites of the criticized step 2: the prompt stops before that step.
        {
            "prompt": "What is 2 + 3 * 4?\n\n",
            "chosen": "First, 3 * 4 = 12, and 2 + 12 = 14.",
            "rejected": "First, 2 + 3 * 4 = 5 * 4 = 20.",
        },
    ]


def test_best_worst_is_one_pair_per_sibling_group():
    # Values 0.9, 0.1, 0.5 (no ground truth, so the search's values).
    assert list(DPOFormat().export(ungraded_three_way())) == [
        {"prompt": "Simplify 6/8.\n\n", "chosen": "6/8 = 3/4.", "rejected": "6/8 = 2/3."},
    ]


def test_all_pairs_clear_the_margin():
    assert list(DPOFormat(pairs="all").export(ungraded_three_way())) == [
        {"prompt": "Simplify 6/8.\n\n", "chosen": "6/8 = 3/4.", "rejected": "6/8 = 2/3."},
        {"prompt": "Simplify 6/8.\n\n", "chosen": "6/8 = 3/4.", "rejected": "6/8 = 0.75 = 3/4."},
        {"prompt": "Simplify 6/8.\n\n", "chosen": "6/8 = 0.75 = 3/4.", "rejected": "6/8 = 2/3."},
    ]
    # 0.4 apart no longer clears a margin of 0.5; 0.8 apart still does.
    assert list(DPOFormat(pairs="all", margin=0.5).export(ungraded_three_way())) == [
        {"prompt": "Simplify 6/8.\n\n", "chosen": "6/8 = 3/4.", "rejected": "6/8 = 2/3."},
    ]


def test_margin_zero_still_needs_a_strict_difference():
    tree = ungraded_three_way()
    tree.nodes[2].value = 0.9  # ties with node 1
    tree.nodes[3].value = 0.9
    with pytest.raises(ExportRefused, match="no sibling pair whose values differ by more than 0.0"):
        list(DPOFormat(margin=0.0).export(tree))


def test_identical_texts_are_no_preference():
    tree = ungraded_three_way()
    tree.nodes[2].text = "6/8 = 3/4.\n"  # same text as node 1 once stripped
    assert list(DPOFormat(pairs="all").export(tree)) == [
        {"prompt": "Simplify 6/8.\n\n", "chosen": "6/8 = 3/4.", "rejected": "6/8 = 0.75 = 3/4."},
        {"prompt": "Simplify 6/8.\n\n", "chosen": "6/8 = 0.75 = 3/4.", "rejected": "6/8 = 3/4."},
    ]


def test_refusals_name_the_reason():
    for tree in (root_only(), all_wrong()):
        with pytest.raises(ExportRefused, match="no sibling pair"):
            list(DPOFormat().export(tree))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"margin": 1.0}, r"margin must be within \[0, 1\)"),
        ({"margin": -0.2}, r"margin must be within \[0, 1\)"),
        ({"margin": "wide"}, "margin must be a number"),
        ({"pairs": "every"}, "pairs must be one of best-worst, all"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        DPOFormat(**options)


def test_make_format_maps_cli_options():
    assert make_format("dpo", margin=0.5, journey=None) == DPOFormat(margin=0.5)
    with pytest.raises(UsageError, match="--journey does not apply to --format dpo"):
        make_format("dpo", journey=True)


def test_exported_rows_pass_their_own_check():
    fmt = DPOFormat(pairs="all", margin=0.0)
    for tree in (order_of_operations(), ungraded_three_way()):
        for row in fmt.export(tree):
            assert fmt.check(row) == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"chosen": "a", "rejected": "b"}, "prompt must be a string, not missing"),
        ({"prompt": "p", "chosen": ["a"], "rejected": "b"}, "chosen must be a string, not list"),
        ({"prompt": "p", "chosen": "a", "rejected": None}, "rejected must be a string, not missing"),
        ({"prompt": "p", "chosen": "", "rejected": "b"}, "chosen is empty"),
        ({"prompt": "\n", "chosen": "a", "rejected": "b"}, "prompt is empty"),
        ({"prompt": "p", "chosen": "a", "rejected": "a"}, "chosen and rejected are the same text"),
    ],
)
def test_check_reports_each_problem(row, message):
    findings = DPOFormat().check(row)
    assert [f.severity for f in findings] == ["error"]
    assert message in findings[0].message


def test_arrow_types_and_datasets_loading(tmp_path, monkeypatch):
    rows = list(DPOFormat(pairs="all").export(order_of_operations()))
    schema = pa.schema([("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())])
    assert DPOFormat.arrow_schema() == schema
    assert pa.Table.from_pylist(rows).schema == schema
    assert load_with_datasets(rows, schema, tmp_path, monkeypatch) == rows
