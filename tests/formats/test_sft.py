"""The sft format: exact conversations from hand-built trees, journeys, options, row checks."""

from __future__ import annotations

import pyarrow as pa
import pytest
from trees import all_wrong, load_with_datasets, order_of_operations, root_only, ungraded_three_way

from cotgen.errors import UsageError
from cotgen.formats import ExportRefused, make_format
from cotgen.formats.marco import to_marco
from cotgen.formats.sft import DEFAULT_SYSTEM_PROMPT, SFTFormat
from cotgen.tree import Tree

PROBLEM = "What is 2 + 3 * 4?"
SYSTEM = {"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."}
USER = {"role": "user", "content": PROBLEM}
REFLECTION = "Wait! Maybe I made some mistakes! I need to rethink from scratch."


def assistant(tree: Tree, **options) -> str:
    (row,) = SFTFormat(**options).export(tree)
    return row["messages"][-1]["content"]


def test_think_tags_give_the_exact_row():
    assert list(SFTFormat().export(order_of_operations())) == [
        {
            "messages": [
                SYSTEM,
                USER,
                {
                    "role": "assistant",
                    "content": "<think>\nFirst, 3 * 4 = 12.\n\nThen 2 + 12 = 14.\n</think>\n\n"
                    "So the answer is \\boxed{14}.",
                },
            ]
        }
    ]


def test_thought_tags_are_marcos_response():
    content = assistant(order_of_operations(), reasoning_tags="thought")
    assert content == (
        "<Thought>\nFirst, 3 * 4 = 12.\n\nThen 2 + 12 = 14.\n\nSo the answer is \\boxed{14}.\n</Thought>\n"
        "<Output>\n14\n</Output>"
    )
    assert content == to_marco(order_of_operations())["response"]


def test_no_tags_is_the_steps_then_the_conclusion():
    assert assistant(order_of_operations(), reasoning_tags="none") == (
        "First, 3 * 4 = 12.\n\nThen 2 + 12 = 14.\n\nSo the answer is \\boxed{14}."
    )


def test_system_prompt_is_configurable_and_optional():
    (row,) = SFTFormat(system_prompt="").export(order_of_operations())
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    (row,) = SFTFormat(system_prompt="Think hard.").export(order_of_operations())
    assert row["messages"][0] == {"role": "system", "content": "Think hard."}
    assert SFTFormat().system_prompt == DEFAULT_SYSTEM_PROMPT


def test_journey_walks_the_refuted_branch_its_critic_and_the_reflection_first():
    assert assistant(order_of_operations(), journey=True) == (
        "<think>\nFirst, 2 + 3 = 5.\n\n"
        "Multiplication comes before addition, so 2 + 3 is not the first step.\n\n"
        f"{REFLECTION}\n\n"
        "First, 3 * 4 = 12.\n\nThen 2 + 12 = 14.\n</think>\n\n"
        "So the answer is \\boxed{14}."
    )
    assert assistant(order_of_operations(), journey=True, reasoning_tags="thought") == (
        to_marco(order_of_operations(), journey=True)["response"]
    )


def best_path_through_the_refine() -> Tree:
    tree = order_of_operations()
    tree.nodes[1].value = 0.1  # the direct path's mean value falls below the refined one's
    return tree


def test_a_refined_best_path_replaces_the_criticized_step():
    assert assistant(best_path_through_the_refine()) == (
        "<think>\nFirst, 3 * 4 = 12, and 2 + 12 = 14.\n</think>\n\nThe answer is \\boxed{14}."
    )


def test_a_journey_through_the_refine_tells_the_criticized_step():
    assert assistant(best_path_through_the_refine(), journey=True, reasoning_tags="none") == (
        "First, 2 + 3 = 5.\n\n"
        "Multiplication comes before addition, so 2 + 3 is not the first step.\n\n"
        f"{REFLECTION}\n\n"
        "First, 3 * 4 = 12, and 2 + 12 = 14.\n\n"
        "The answer is \\boxed{14}."
    )


def test_a_path_ending_at_an_answering_step_gets_an_answer_sentence():
    tree = Tree.new("What is 3 + 3?", answer="6")
    tree.add(0, "step", "3 + 3 = 6.", value=1.0)
    tree.add(1, "step", "So the answer is \\boxed{6}.", value=1.0, terminal=True, correct=True)
    tree.check()
    assert assistant(tree, system_prompt="") == (
        "<think>\n3 + 3 = 6.\n\nSo the answer is \\boxed{6}.\n</think>\n\nThe final answer is $\\boxed{6}$."
    )


@pytest.mark.parametrize("tree", [ungraded_three_way(), all_wrong(), root_only()], ids=["ungraded", "wrong", "root"])
@pytest.mark.parametrize("tags", ["think", "thought", "none"])
def test_no_correct_path_is_refused(tree, tags):
    with pytest.raises(ExportRefused, match="no correct root-to-leaf path"):
        list(SFTFormat(reasoning_tags=tags).export(tree))


def test_think_tags_inside_a_step_are_refused():
    tree = order_of_operations()
    tree.nodes[3].text = "Then 2 + 12 = 14.</think>"
    with pytest.raises(ExportRefused, match="contains </think>"):
        list(SFTFormat().export(tree))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reasoning_tags": "xml"}, "reasoning_tags must be one of think, thought, none"),
        ({"system_prompt": None}, "system_prompt must be a string"),
        ({"journey": "yes"}, "journey must be true or false"),
        ({"max_journey_branches": 0}, "max_journey_branches must be at least 1"),
        ({"max_journey_branches": "2"}, "max_journey_branches must be an integer"),
        ({"max_journey_branches": True}, "max_journey_branches must be an integer"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        SFTFormat(**options)


def test_make_format_maps_cli_options():
    fmt = make_format("sft", journey=True, max_journey_branches=2, reasoning_tags="none", system_prompt="", margin=None)
    assert fmt == SFTFormat(system_prompt="", reasoning_tags="none", journey=True, max_journey_branches=2)
    with pytest.raises(UsageError, match="--label-threshold does not apply to --format sft"):
        make_format("sft", label_threshold=0.5)
    with pytest.raises(UsageError, match="--format sft: reasoning_tags must be"):
        make_format("sft", reasoning_tags="xml")


def test_exported_rows_pass_their_own_check():
    for tags in ("think", "thought", "none"):
        for journey in (False, True):
            fmt = SFTFormat(reasoning_tags=tags, journey=journey)
            for tree in (order_of_operations(), best_path_through_the_refine()):
                for row in fmt.export(tree):
                    assert fmt.check(row) == []


def msgs(*pairs):
    return {"messages": [{"role": r, "content": c} for r, c in pairs]}


@pytest.mark.parametrize(
    ("row", "severity", "message"),
    [
        ({}, "error", "messages must be a list of {role, content}, not missing"),
        ({"messages": "hi"}, "error", "messages must be a list of {role, content}, not str"),
        ({"messages": []}, "error", "messages is empty: a conversation needs a user and an assistant message"),
        ({"messages": ["hi", {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
         "error", "messages[0] must be a {role, content} object"),
        (msgs(("user", "q"), ("bot", "a")), "error", "messages[1]: role 'bot' is not one of system, user, assistant"),
        (msgs(("user", "q"), ("assistant", "a"), ("user", "more?")), "error", "the last message must be the assistant's"),
        (msgs(("user", "q"), ("system", "s"), ("assistant", "a")), "error", "messages[1]: a system message may only come first"),
        (msgs(("system", "s"), ("assistant", "a")), "error", "messages has no user message"),
        (msgs(("user", "  "), ("assistant", "a")), "error", "messages[0]: content is empty"),
        ({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]},
         "error", "messages[0]: content must be a string"),
        (msgs(("user", "q"), ("assistant", "<think>\nhalf a thought")), "warning",
         "messages[1]: <think> and </think> do not pair up"),
        (msgs(("user", "q"), ("assistant", "<Thought>\nx\n</Thought>\n<Output>\ncut")), "warning",
         "messages[1]: <Output> and </Output> do not pair up"),
    ],
)
def test_check_reports_each_problem(row, severity, message):
    findings = SFTFormat().check(row)
    assert [(f.severity, f.message) for f in findings] == [(severity, message)]


def test_arrow_types_and_datasets_loading(tmp_path, monkeypatch):
    rows = [*SFTFormat().export(order_of_operations()), *SFTFormat(system_prompt="", journey=True).export(order_of_operations())]
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    assert SFTFormat.arrow_schema() == pa.schema([("messages", pa.list_(message))])
    assert pa.Table.from_pylist(rows).schema == SFTFormat.arrow_schema()
    assert load_with_datasets(rows, SFTFormat.arrow_schema(), tmp_path, monkeypatch) == rows
