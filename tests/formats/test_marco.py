"""Marco-o1 CoT_demo: export of hand-built trees (golden file), the JSON file, record checks, records read back as trees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_paths import branching

from cotgen.errors import DataError
from cotgen.formats import make_format
from cotgen.formats.base import ExportRefused
from cotgen.formats.marco import (
    MarcoFormat,
    MarcoParseError,
    check_marco_record,
    dumps_marco,
    loads_marco,
    parse_marco,
    to_marco,
)
from cotgen.formats.paths import REFLECTION
from cotgen.tree import Tree, tree_id

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("COTGEN_UPDATE_GOLDEN") == "1"  # rewrite golden files, then review the diff


def fixed_on_path() -> Tree:
    """The only correct path goes through a critic and its refine."""
    t = branching()
    t.nodes[6].correct = False
    return t


def test_export_matches_golden_file():
    records = [
        to_marco(branching()),
        to_marco(branching(), journey=True),
        to_marco(fixed_on_path()),
        to_marco(fixed_on_path(), journey=True),
    ]
    text = dumps_marco(records)
    path = GOLDEN / "marco_branching.json"
    if UPDATE:
        path.write_text(text, encoding="utf-8", newline="")
    assert path.read_text(encoding="utf-8") == text


def test_export_builds_the_exact_response_shape():
    record = to_marco(branching())
    assert record == {
        "instruction": "Felix drives 66 mph; twice as fast for 4 hours. Miles?",
        "response": "<Thought>\n2*66 = 132 mph.\n\n4*132 = 528 miles.\n\nHe drives \\boxed{528} miles.\n"
        "</Thought>\n<Output>\n528\n</Output>",
    }
    assert check_marco_record(record) == []


def test_journey_holds_the_wrong_step_the_critic_and_the_reflection_phrase():
    response = to_marco(branching(), journey=True)["response"]
    thought = response.split("\n</Thought>")[0]
    assert thought == (
        "<Thought>\n66+2 = 68 mph.\n\nTwice means times 2.\n\n" + REFLECTION
        + "\n\n2*66 = 132 mph.\n\n4*132 = 528 miles.\n\nHe drives \\boxed{528} miles."
    )


def test_a_refined_step_replaces_the_step_it_rewrote_unless_journey():
    plain = to_marco(fixed_on_path())["response"]
    assert "66+2" not in plain and "Twice means" not in plain
    assert plain.endswith("<Output>\n528\n</Output>")  # from the #### line
    assert "66+2 = 68 mph.\n\nTwice means times 2.\n\n" + REFLECTION in to_marco(fixed_on_path(), journey=True)["response"]


def test_output_falls_back_to_the_last_node_text_without_a_stated_answer():
    t = Tree.new("Name a prime.", answer="2")
    t.add(0, "conclusion", "  Two is prime.  ", terminal=True, correct=True, value=1.0)
    assert to_marco(t)["response"] == "<Thought>\nTwo is prime.\n</Thought>\n<Output>\nTwo is prime.\n</Output>"


def test_export_refuses_a_tree_without_a_correct_path():
    t = branching()
    t.nodes[6].correct = t.nodes[7].correct = False
    with pytest.raises(ExportRefused, match="no correct root-to-leaf path"):
        to_marco(t)
    with pytest.raises(ExportRefused, match="no correct root-to-leaf path"):
        to_marco(t, journey=True)


@pytest.mark.parametrize("tag", ["<Thought>", "</Thought>", "<Output>", "</Output>"])
def test_export_refuses_a_text_holding_a_response_tag(tag):
    t = branching()
    t.nodes[5].text = f"4*132 {tag} 528"
    with pytest.raises(ExportRefused, match=f"node 5 \\(step\\): its text contains {tag}"):
        to_marco(t)


def test_export_refuses_an_empty_problem():
    t = branching()
    t.problem = "  "
    with pytest.raises(ExportRefused, match="empty problem"):
        to_marco(t)


# -- the file ---------------------------------------------------------------------------


def test_dumps_writes_marcos_layout():
    records = [{"instruction": "1+1 ≠ 3?", "response": "<Thought>\nyes\n</Thought>\n<Output>\nyes\n</Output>"}]
    assert dumps_marco(records) == json.dumps(records, ensure_ascii=False, indent=4) + "\n"
    assert "≠" in dumps_marco(records)
    assert loads_marco(dumps_marco(records)) == records


@pytest.mark.parametrize(("text", "message"), [
    ('{"instruction": "x", "response": "y"}',
     "data.json is a JSON object, expected an array of {instruction, response}"),
    ('"just a string"', "data.json is a JSON string, expected an array"),
    ("null", "data.json is JSON null, expected an array"),
    ("3", "data.json is a JSON number, expected an array"),
    ('[{"instruction": "x",', "data.json: not valid JSON (line 1, column 22"),
    ("", "data.json: not valid JSON (line 1, column 1"),
])
def test_loads_names_the_file_when_it_is_not_a_json_array(text, message):
    with pytest.raises(DataError) as info:
        loads_marco(text, Path("data.json"))
    assert message in str(info.value)


def test_loads_without_a_path_says_the_input():
    with pytest.raises(DataError, match="the input is a JSON object"):
        loads_marco("{}")


# -- record checks ----------------------------------------------------------------------

GOOD = "<Thought>\nstep one\n\nstep two\n</Thought>\n<Output>\n42\n</Output>"


def messages(obj):
    return [(f.severity, f.message) for f in check_marco_record(obj)]


def test_a_good_record_has_no_findings():
    assert check_marco_record({"instruction": "q", "response": GOOD}) == []


@pytest.mark.parametrize(("obj", "expected"), [
    ([1, 2], [("error", "not an object: list, expected {instruction, response}")]),
    ("text", [("error", "not an object: a JSON string, expected {instruction, response}")]),
    ({"response": GOOD}, [("error", "missing 'instruction'")]),
    ({"instruction": "q"}, [("error", "missing 'response'")]),
    ({"instruction": 3, "response": GOOD}, [("error", "'instruction' is a JSON number, expected a string")]),
    ({"instruction": "q", "response": None}, [("error", "'response' is JSON null, expected a string")]),
    ({"instruction": " ", "response": GOOD}, [("error", "empty instruction")]),
    ({"instruction": "q", "response": GOOD, "system": "s", "id": 1},
     [("warning", "extra key(s) id, system: Marco-o1 records hold only instruction and response")]),
])
def test_record_checks_of_the_object(obj, expected):
    assert messages(obj) == expected


RESPONSES = [
    # (name, response, message, offset)
    ("no thought", "step\n</Thought>\n<Output>\n42\n</Output>", "no <Thought>", None),
    ("no thought end", "<Thought>\nstep\n<Output>\n42\n</Output>", "no </Thought>", None),
    ("no output", "<Thought>\nstep\n</Thought>\n42\n</Output>", "no <Output>", None),
    ("truncated", "<Thought>\nstep\n</Thought>\n<Output>\n42", "truncated: no </Output>", None),
    ("truncated in the thought", "<Thought>\nstep", "no </Thought>", None),
    ("empty thought", "<Thought>\n</Thought>\n<Output>\n42\n</Output>", "empty thought", 10),
    ("blank thought", "<Thought>\n \n\n</Thought>\n<Output>\n42\n</Output>", "empty thought", 10),
    ("empty output", "<Thought>\nx\n</Thought>\n<Output>\n\n</Output>", "empty output", 32),
    ("text before", " <Thought>\nx\n</Thought>\n<Output>\n42\n</Output>",
     "the response must start with <Thought> and a newline", 0),
    ("text after", GOOD + "\n", "expected the response to end with \\n</Output>", len(GOOD)),
    ("no newline before output end", GOOD.replace("\n</Output>", "</Output>"),
     "expected the response to end with \\n</Output>", len(GOOD) - len("</Output>") - 1),
    ("no newline between", GOOD.replace("</Thought>\n<Output>", "</Thought><Output>"),
     "expected \\n</Thought>\\n<Output>\\n between the thought and the output", GOOD.index("</Thought>")),
    ("output before thought end", "<Thought>\nx\n<Output>\n42\n</Output>\n</Thought>",
     "expected \\n</Thought>\\n<Output>\\n", None),
    ("two outputs", GOOD + "<Output>", "<Output> appears 2 times; expected once", len(GOOD)),
]


@pytest.mark.parametrize(("response", "message", "offset"), [r[1:] for r in RESPONSES], ids=[r[0] for r in RESPONSES])
def test_record_checks_of_the_response_shape(response, message, offset):
    [finding] = check_marco_record({"instruction": "q", "response": response})
    assert finding.severity == "error"
    assert finding.message.startswith(message), finding.message
    if offset is not None:
        assert finding.offset == offset


def test_replacement_characters_are_warnings_naming_the_field():
    findings = check_marco_record({"instruction": "q\ufffd", "response": GOOD.replace("42", "4\ufffd2")})
    assert [(f.severity, f.message, f.offset) for f in findings] == [
        ("warning", "instruction contains U+FFFD (replacement character): text was mis-decoded upstream", None),
        ("warning", "response contains U+FFFD (replacement character): text was mis-decoded upstream",
         GOOD.index("42") + 1),
    ]


# -- plug-in ----------------------------------------------------------------------------


def test_format_exports_one_record_and_checks_rows():
    fmt = make_format("marco", journey=True)
    assert isinstance(fmt, MarcoFormat)
    assert (fmt.name, fmt.file_kind, fmt.columns) == ("marco", "json", ("instruction", "response"))
    assert list(fmt.export(branching())) == [to_marco(branching(), journey=True)]
    assert fmt.check({"instruction": "q", "response": "<Thought>\nx"}) == check_marco_record(
        {"instruction": "q", "response": "<Thought>\nx"}
    )


def test_format_passes_the_branch_budget_on():
    t = branching()
    t.add(1, "step", "4+132 = 136.", value=0.0, rating="negative")  # 8
    t.add(8, "critic", "Distance is speed times time.")  # 9
    one = next(MarcoFormat(journey=True).export(t))["response"]
    two = next(MarcoFormat(journey=True, max_journey_branches=2).export(t))["response"]
    assert one.count(REFLECTION) == 1 and two.count(REFLECTION) == 2


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_format_rejects_a_bad_branch_budget(value):
    with pytest.raises(ValueError, match="max_journey_branches"):
        MarcoFormat(max_journey_branches=value)


# -- reading records back as trees ------------------------------------------------------


@pytest.mark.parametrize("make", [branching, fixed_on_path], ids=["branching", "fixed_on_path"])
@pytest.mark.parametrize("journey", [False, True], ids=["plain", "journey"])
def test_parse_inverts_to_marco(make, journey):
    record = to_marco(make(), journey=journey)
    tree = parse_marco(record)
    tree.check()
    assert to_marco(tree, journey=journey) == record
    # the journey's tree also gives the plain record the original tree gives
    assert to_marco(tree) == to_marco(make())


def test_a_plain_record_is_a_chain_ending_in_its_correct_conclusion():
    tree = parse_marco(to_marco(branching()))
    assert [(n.id, n.parent, n.kind) for n in tree.nodes] == [(0, -1, "problem"), (1, 0, "step"), (2, 1, "step"), (3, 2, "conclusion")]
    assert [n.text for n in tree.nodes[1:]] == ["2*66 = 132 mph.", "4*132 = 528 miles.", "He drives \\boxed{528} miles."]
    assert (tree.nodes[3].terminal, tree.nodes[3].correct, tree.stats.correct_leaves) == (True, True, 1)
    assert tree.answer is None and tree.id == tree_id(tree.problem, None)  # no gold answer in the format


def test_a_journey_comes_back_as_a_refuted_branch_its_critic_and_the_fixed_path():
    tree = parse_marco(to_marco(branching(), journey=True))
    shape = [(n.id, n.parent, n.kind, n.rating, n.text) for n in tree.nodes]
    assert shape == [
        (0, -1, "problem", "unknown", branching().problem),
        (1, 0, "step", "negative", "66+2 = 68 mph."),
        (2, 1, "critic", "unknown", "Twice means times 2."),
        (3, 0, "step", "unknown", "2*66 = 132 mph."),  # the fix goes on from the step before the wrong one
        (4, 3, "step", "unknown", "4*132 = 528 miles."),
        (5, 4, "conclusion", "unknown", "He drives \\boxed{528} miles."),
    ]
    assert all(REFLECTION not in n.text for n in tree.nodes)  # the line is the journey's, not a node


def test_two_refuted_branches_come_back_in_order():
    record = to_marco(branching(), journey=True)
    second = record["response"].replace(REFLECTION, REFLECTION + "\n\n3*66 = 198 mph.\n\nNot three: twice.\n\n" + REFLECTION, 1)
    tree = parse_marco({**record, "response": second})
    assert [n.kind for n in tree.nodes] == ["problem", "step", "critic", "step", "critic", "step", "step", "conclusion"]
    assert [n.parent for n in tree.nodes if n.rating == "negative"] == [0, 0]
    assert to_marco(tree, journey=True, max_journey_branches=2)["response"] == second


def test_an_output_the_thought_does_not_state_is_a_conclusion_of_its_own():
    tree = parse_marco({"instruction": "Is 7 prime?", "response": "<Thought>\nIt has no divisor but 1 and 7.\n\n</Thought>\n<Output>\nyes\n</Output>"})
    tree.check()
    assert [(n.kind, n.text, n.terminal, n.correct) for n in tree.nodes[1:]] == [
        ("step", "It has no divisor but 1 and 7.\n", False, None),
        ("conclusion", "yes", True, True),
    ]


def test_a_reflection_line_without_a_step_and_critic_before_it_stays_text():
    response = f"<Thought>\nA critic alone.\n\n{REFLECTION}\n\nThe answer is \\boxed{{4}}.\n</Thought>\n<Output>\n4\n</Output>"
    tree = parse_marco({"instruction": "2+2?", "response": response})
    tree.check()
    assert [n.kind for n in tree.nodes] == ["problem", "step", "step", "conclusion"]
    assert to_marco(tree)["response"] == response


@pytest.mark.parametrize(
    "record, message",
    [
        (["a", "list"], "not an object"),
        ({"instruction": "q"}, "missing 'response'"),
        ({"instruction": 3, "response": "<Thought>\nx\n</Thought>\n<Output>\ny\n</Output>"}, "'instruction' is a JSON number"),
        ({"instruction": "q", "response": "just an answer"}, "no <Thought>"),
        ({"instruction": "q", "response": "<Thought>\nx\n</Thought>\n<Output>\ny"}, "truncated: no </Output>"),
        ({"instruction": "q", "response": "<Thought>\n \n</Thought>\n<Output>\ny\n</Output>"}, "empty thought"),
    ],
)
def test_parse_refuses_a_record_that_holds_no_tree(record, message):
    with pytest.raises(MarcoParseError) as info:
        parse_marco(record)
    assert message in info.value.reason


def test_every_sound_record_of_the_real_file_is_a_sound_tree(shared: Path):
    records = loads_marco((shared / "fixtures" / "marco_cot_demo.json").read_text(encoding="utf-8"))
    refused = {}
    for i, record in enumerate(records):
        try:
            tree = parse_marco(record)
        except MarcoParseError as exc:
            refused[i] = exc.reason
            continue
        tree.check()
        assert tree.problem == record["instruction"]
        assert tree.nodes[-1].kind == "conclusion" and tree.nodes[-1].correct is True
        assert len(tree.nodes) >= 3  # problem, at least one step, the conclusion
    assert refused == {8: "truncated: no </Output>", 109: "truncated: no </Output>"}


def test_a_refuted_branch_of_two_steps_keeps_its_first_on_the_path():
    # The text does not say where a branch began: the journey round-trips, the plain record
    # keeps the branch's first step (README, Marco-o1).
    t = Tree.new("q?", "5")
    start = t.add(0, "step", "start.", value=0.9)
    wrong = t.add(start.id, "step", "wrong one.", value=0.3)
    wrong2 = t.add(wrong.id, "step", "wrong two.", value=0.2, rating="negative")
    t.add(wrong2.id, "critic", "both wrong.")
    right = t.add(start.id, "step", "right.", value=0.9)
    t.add(right.id, "conclusion", "\\boxed{5}", terminal=True, correct=True, value=1.0)
    record = to_marco(t, journey=True)
    tree = parse_marco(record)
    tree.check()
    assert to_marco(tree, journey=True) == record
    assert to_marco(tree)["response"] == "<Thought>\nstart.\n\nwrong one.\n\nright.\n\n\\boxed{5}\n</Thought>\n<Output>\n5\n</Output>"
