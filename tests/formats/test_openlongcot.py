"""OpenLongCoT: export of hand-built trees (golden files), parse errors by message, the plug-in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cotgen.errors import DataError
from cotgen.formats import make_format
from cotgen.formats.base import ExportRefused
from cotgen.formats.openlongcot import (
    TAGS,
    OpenLongCoTFormat,
    OpenLongCoTParseError,
    check_openlongcot,
    parse_openlongcot,
    to_openlongcot,
)
from cotgen.tree import Tree

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("COTGEN_UPDATE_GOLDEN") == "1"  # rewrite golden files, then review the diff


def felix() -> Tree:
    """Steps with leading spaces, GSM8K calculator marks (<<...>>), a critic, a refine, a conclusion."""
    t = Tree.new("Felix drives 66 mph. Twice as fast for 4 hours: how many miles? ", answer="528")
    t.add(0, "step", "Twice as fast is 2*66=<<2*66=132>>132 mph.", value=0.9, rating="positive")  # 1
    t.add(0, "step", " Twice as fast is 66+2 = 68 mph.", value=0.1, rating="negative")  # 2
    t.add(2, "critic", "Twice means multiply by 2, not add 2.")  # 3
    t.add(3, "refine", "Twice as fast is 2*66 = 132 mph.\n", value=0.8, rating="positive")  # 4
    t.add(1, "step", " In 4 hours: 4*132 = 528 miles. ", value=1.0, rating="positive")  # 5
    t.add(5, "conclusion", "He covers \\boxed{528} miles.", value=1.0, rating="positive",
          terminal=True, correct=True)  # 6
    t.check()
    return t


def record(father: object, local: object, thought: str, rating: str | None = "<positive_rating>") -> str:
    out = (
        f"<start_of_father_id>{father}<end_of_father_id><start_of_local_id>{local}<end_of_local_id>"
        f"<start_of_thought>{thought}<end_of_thought>"
    )
    if rating is not None:
        out += f"<start_of_rating>{rating}<end_of_rating>"
    return out


ROOT = record(-1, 0, "<problem>What is 1+1?", None)


def parse_error(text: str) -> OpenLongCoTParseError:
    with pytest.raises(OpenLongCoTParseError) as info:
        parse_openlongcot(text)
    return info.value


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8", newline="")
    assert path.read_text(encoding="utf-8") == text


# -- export -----------------------------------------------------------------------------


def test_export_matches_golden_file():
    check_golden("openlongcot_felix.txt", to_openlongcot(felix()) + "\n")


def test_export_with_root_rating_and_space_separator_matches_golden_file():
    text = to_openlongcot(felix(), root_rating=True, separator=" ")
    check_golden("openlongcot_felix_root_rating.txt", text + "\n")


def test_export_writes_records_in_preorder_with_kind_tags():
    text = to_openlongcot(felix())
    lines = text.split("\n<start_of_father_id>")
    lines[1:] = ["<start_of_father_id>" + line for line in lines[1:]]
    assert [line.split("<start_of_local_id>")[1].split("<")[0] for line in lines] == ["0", "1", "5", "6", "2", "3", "4"]
    assert lines[0] == record(-1, 0, "<problem>" + felix().problem, None)
    assert "<start_of_thought><critic>Twice means" in lines[5]
    assert "<start_of_thought><refine>Twice as fast" in lines[6]
    assert "<start_of_thought><conclusion>He covers" in lines[3]
    assert lines[4].endswith("<start_of_rating><negative_rating><end_of_rating>")


def test_export_then_parse_gives_back_every_node():
    tree = felix()
    back = parse_openlongcot(to_openlongcot(tree))
    assert back.problem == tree.problem
    fields = lambda t: sorted((n.id, n.parent, n.kind, n.text, n.rating) for n in t.nodes)  # noqa: E731
    assert fields(back) == fields(tree)


@pytest.mark.parametrize("tag", TAGS + ("<start_of_anything>", "<unknow_rating>"))
def test_export_refuses_a_text_holding_a_structural_tag(tag):
    tree = felix()
    tree.nodes[5].text = f"The model wrote {tag} here."
    with pytest.raises(ExportRefused, match=r"node 5 \(step\).*structural tag"):
        to_openlongcot(tree)


@pytest.mark.parametrize("tag", ["<critic>", "<refine>", "<conclusion>", "<problem>"])
def test_export_refuses_a_step_that_starts_with_a_kind_tag(tag):
    tree = felix()
    tree.nodes[1].text = tag + " looks like another kind"
    with pytest.raises(ExportRefused, match=r"node 1 \(step\): its text starts with a kind tag"):
        to_openlongcot(tree)


def test_export_keeps_a_critic_whose_text_starts_with_its_own_tag():
    tree = felix()
    tree.nodes[3].text = "<critic>doubled"
    assert parse_openlongcot(to_openlongcot(tree)).by_id()[3].text == "<critic>doubled"


def test_export_refuses_empty_text_and_names_the_node():
    tree = felix()
    tree.nodes[4].text = ""
    with pytest.raises(ExportRefused, match=r"node 4 \(refine\): empty text"):
        to_openlongcot(tree)


def test_export_refuses_an_empty_problem():
    with pytest.raises(ExportRefused, match="node 0 .*empty text"):
        to_openlongcot(Tree.new(""))


def test_export_refuses_nodes_unreachable_from_the_root():
    tree = felix()
    tree.nodes[6].parent = 99
    with pytest.raises(ExportRefused, match="1 node.* not reachable"):
        to_openlongcot(tree)


def test_angle_brackets_that_are_not_tags_are_exported():
    tree = Tree.new("Is 3 < 4 > 2? <b>bold</b> <end_of_thought <start_of_ x> <start_of_")
    tree.add(0, "step", "<<3<4>> yes, and <positive_rating is not a tag", rating="positive")
    back = parse_openlongcot(to_openlongcot(tree))
    assert [n.text for n in back.nodes] == [tree.problem, tree.nodes[1].text]


@pytest.mark.parametrize("separator", ["", "--", " x "])
def test_separator_must_be_whitespace(separator):
    with pytest.raises(ValueError, match="separator must be whitespace"):
        to_openlongcot(felix(), separator=separator)
    with pytest.raises(ValueError, match="separator must be whitespace"):
        OpenLongCoTFormat(separator=separator)


# -- parse ------------------------------------------------------------------------------


def test_parse_accepts_any_whitespace_between_records_and_around_them():
    text = "\n  " + ROOT + " \t\r\n" + record(0, 1, " step one ") + "\n\n"
    tree = parse_openlongcot(text)
    assert [(n.id, n.parent, n.kind, n.text, n.rating) for n in tree.nodes] == [
        (0, -1, "problem", "What is 1+1?", "unknown"),
        (1, 0, "step", " step one ", "positive"),
    ]
    assert tree.problem == "What is 1+1?"


def test_parse_accepts_a_root_rating_and_reads_every_rating_and_kind():
    text = "".join([
        record(-1, 0, "<problem>P", "<negative_rating>"),
        record(0, 1, "s", "<negative_rating>"),
        record(1, 2, "<critic>c", "<unknown_rating>"),
        record(2, 3, "<refine>r", "<positive_rating>"),
        record(3, 4, "<conclusion>\\boxed{2}", "<positive_rating>"),
    ])
    tree = parse_openlongcot(text)
    assert [(n.kind, n.text, n.rating) for n in tree.nodes] == [
        ("problem", "P", "negative"), ("step", "s", "negative"), ("critic", "c", "unknown"),
        ("refine", "r", "positive"), ("conclusion", "\\boxed{2}", "positive"),
    ]
    assert to_openlongcot(tree, root_rating=True, separator="\n") == "\n".join(
        text.replace("<end_of_rating><start_of", "<end_of_rating>\n<start_of").split("\n")
    )


def test_parse_error_is_a_data_error_whose_text_gives_the_offset():
    exc = parse_error(ROOT + "junk")
    assert isinstance(exc, DataError)
    assert exc.offset == len(ROOT)
    assert str(exc) == f"char {exc.offset}: {exc.reason}"


def nested_root() -> str:
    inner = record(-1, 0, "<problem>What is 1+1?", None)
    return record(-1, 0, inner, None) + "<end_of_thought>" + record(0, 1, "2")


BAD_ROWS = [
    # (name, row, offset of the error, words its message must hold)
    ("misspelled unknown rating", ROOT + record(0, 1, "<critic>c", "<unknow_rating>"),
     len(ROOT) + len(record(0, 1, "<critic>c", None)) + len("<start_of_rating>"),
     "LLaMA-O1's misspelling <unknow_rating>; expected <unknown_rating>"),
    ("misspelled rating inside a thought", ROOT + record(0, 1, "ok <unknow_rating>"),
     len(ROOT) + len(record(0, 1, "", None)) - len("<end_of_thought>") + 3,
     "LLaMA-O1's misspelling <unknow_rating>"),
    ("duplicate local id", ROOT + record(0, 1, "a") + record(0, 1, "b"),
     len(ROOT) + len(record(0, 1, "a")) + len("<start_of_father_id>0<end_of_father_id><start_of_local_id>"),
     "duplicate local id 1 (LLaMA-O1's duplicated-id bug)"),
    ("double-wrapped root", nested_root(), len(record(-1, 0, "", None)) - len("<end_of_thought>"),
     "a record nested inside the thought of node 0 (LLaMA-O1's double-wrapped root bug)"),
    ("record nested in a step", ROOT + record(0, 1, "x" + record(0, 2, "y")),
     len(ROOT) + len(record(0, 1, "", None)) - len("<end_of_thought>") + 1,
     "a record nested inside the thought of node 1"),
    ("undeclared father", ROOT + record(0, 1, "a") + record(7, 2, "b"),
     len(ROOT) + len(record(0, 1, "a")) + len("<start_of_father_id>"),
     "father id 7 of node 2 was not declared before it"),
    ("father declared later", ROOT + record(2, 1, "a") + record(0, 2, "b"),
     len(ROOT) + len("<start_of_father_id>"), "father id 2 of node 1 was not declared before it"),
    ("non-integer father id", ROOT + record("x1", 1, "a"),
     len(ROOT) + len("<start_of_father_id>"), "father id 'x1' is not an integer"),
    ("non-integer local id", ROOT + record(0, "1.5", "a"),
     len(ROOT) + len("<start_of_father_id>0<end_of_father_id><start_of_local_id>"),
     "local id '1.5' is not an integer"),
    ("spaces around an id", ROOT + record(0, " 1", "a"),
     len(ROOT) + len("<start_of_father_id>0<end_of_father_id><start_of_local_id>"),
     "local id ' 1' is not an integer"),
    ("negative local id", ROOT + record(0, -3, "a"),
     len(ROOT) + len("<start_of_father_id>0<end_of_father_id><start_of_local_id>"), "local id -3 is negative"),
    ("empty thought", ROOT + record(0, 1, ""),
     len(ROOT) + len(record(0, 1, "", None)) - len("<end_of_thought>"), "empty thought in node 1"),
    ("empty critic", ROOT + record(0, 1, "a") + record(1, 2, "<critic>"),
     len(ROOT) + len(record(0, 1, "a")) + len(record(1, 2, "", None)) - len("<end_of_thought>"),
     "empty thought in node 2: nothing after <critic>"),
    ("empty problem", record(-1, 0, "<problem>", None), len(record(-1, 0, "", None)) - len("<end_of_thought>"),
     "empty thought in node 0"),
    ("trailing garbage", ROOT + record(0, 1, "a") + " and more",
     len(ROOT) + len(record(0, 1, "a")) + 1, "trailing text after the last record"),
    ("no root: empty row", "  \n", 3, "no root: the row holds no record"),
    ("no root: first record is a step", record(0, 1, "a"), len("<start_of_father_id>"),
     "no root: the first record must be the root (father id -1, local id 0), found father id 0, local id 1"),
    ("second root", ROOT + record(-1, 1, "<problem>again", None), len(ROOT) + len("<start_of_father_id>"),
     "a second root record (father id -1)"),
    ("unclosed thought", ROOT + record(0, 1, "a").split("<end_of_thought>")[0],
     len(ROOT) + len("<start_of_father_id>0<end_of_father_id><start_of_local_id>1<end_of_local_id>"),
     "unbalanced <start_of_thought>: no <end_of_thought> before the end of the row"),
    ("unclosed father id", ROOT + "<start_of_father_id>0<start_of_local_id>1<end_of_local_id>",
     len(ROOT) + len("<start_of_father_id>0"),
     "unbalanced <start_of_father_id>: expected <end_of_father_id>, found <start_of_local_id>"),
    ("stray end tag", ROOT + "<end_of_thought>", len(ROOT),
     "unbalanced <end_of_thought>: expected <start_of_father_id>"),
    ("unknown structural tag", ROOT + "<start_of_meta>x<end_of_meta>", len(ROOT),
     "unknown structural tag <start_of_meta>; expected <start_of_father_id>"),
    ("unknown tag inside a thought", ROOT + record(0, 1, "a<end_of_meta>"),
     len(ROOT) + len(record(0, 1, "", None)) - len("<end_of_thought>") + 1,
     "unknown structural tag <end_of_meta> inside the thought of node 1"),
    ("thought opened twice", ROOT + record(0, 1, "a<start_of_thought>b"),
     len(ROOT) + len(record(0, 1, "", None)) - len("<end_of_thought>") + 1,
     "unbalanced tags: <start_of_thought> inside the thought of node 1, expected <end_of_thought> first"),
    ("step without rating", ROOT + record(0, 1, "a", None) + record(1, 2, "b"),
     len(ROOT) + len(record(0, 1, "a", None)),
     "expected <start_of_rating> after the thought of node 1, found <start_of_father_id>"),
    ("last step without rating", ROOT + record(0, 1, "a", None), len(ROOT) + len(record(0, 1, "a", None)),
     "expected <start_of_rating> after the thought of node 1, found the end of the row"),
    ("unknown rating token", ROOT + record(0, 1, "a", "<great_rating>"),
     len(ROOT) + len(record(0, 1, "a", None)) + len("<start_of_rating>"), "unknown rating token <great_rating>"),
    ("unclosed root rating", ROOT + "<start_of_rating><unknown_rating>" + record(0, 1, "a"),
     len(ROOT) + len("<start_of_rating><unknown_rating>"),
     "unbalanced <start_of_rating>: expected <end_of_rating>, found <start_of_father_id>"),
    ("misspelled root rating", ROOT + "<start_of_rating><unknow_rating><end_of_rating>",
     len(ROOT) + len("<start_of_rating>"), "LLaMA-O1's misspelling <unknow_rating>"),
    ("two rating parts", ROOT + record(0, 1, "a") + "<start_of_rating><positive_rating><end_of_rating>",
     len(ROOT) + len(record(0, 1, "a")), "a second rating part for one record; expected <start_of_father_id>"),
    ("unclosed rating", ROOT + record(0, 1, "a", None) + "<start_of_rating><positive_rating>",
     len(ROOT) + len(record(0, 1, "a", None)) + len("<start_of_rating><positive_rating>"),
     "unbalanced <start_of_rating>: expected <end_of_rating>, found the end of the row"),
]


@pytest.mark.parametrize(("row", "offset", "message"), [b[1:] for b in BAD_ROWS], ids=[b[0] for b in BAD_ROWS])
def test_parse_error_names_the_problem_and_its_offset(row, offset, message):
    exc = parse_error(row)
    assert message in exc.reason
    assert exc.offset == offset, (exc.offset, exc.reason)


# -- check ------------------------------------------------------------------------------


def test_check_of_a_valid_row_finds_nothing():
    assert check_openlongcot(to_openlongcot(felix())) == []


def test_check_reports_a_parse_error_with_its_offset():
    [finding] = check_openlongcot(ROOT + record(0, 1, "a") + record(0, 1, "b"))
    assert finding.severity == "error"
    assert finding.message == "duplicate local id 1 (LLaMA-O1's duplicated-id bug)"
    assert finding.offset is not None and finding.offset > len(ROOT)


def test_check_reports_broken_tree_invariants_as_errors():
    row = ROOT + record(0, 1, "<critic>a critic of the problem", "<unknown_rating>")
    findings = check_openlongcot(row)
    assert [f.severity for f in findings] == ["error"]
    assert "a critic's parent must be a step, refine or conclusion, not 'problem'" in findings[0].message


def test_check_reports_a_rated_critic():
    row = ROOT + record(0, 1, "a") + record(1, 2, "<critic>c", "<positive_rating>")
    assert [f.message for f in check_openlongcot(row)] == ["node 2: critic nodes are always rated 'unknown'"]


def test_check_warns_about_replacement_characters_with_their_offset():
    row = ROOT + record(0, 1, "mis\ufffddecoded")
    [finding] = check_openlongcot(row)
    assert (finding.severity, finding.offset) == ("warning", row.index("\ufffd"))
    assert "U+FFFD" in finding.message


def test_check_warns_about_a_root_rating_and_a_root_without_problem_tag():
    findings = check_openlongcot(record(-1, 0, "no tag", "<unknown_rating>") + record(0, 1, "a"))
    assert [f.severity for f in findings] == ["warning", "warning"]
    assert "root record has a rating" in findings[0].message
    assert "does not start with <problem>" in findings[1].message


# -- plug-in ----------------------------------------------------------------------------


def test_format_exports_one_row_with_the_tree_columns():
    tree = felix()
    rows = list(make_format("openlongcot").export(tree))
    assert rows == [{"text": to_openlongcot(tree), "id": tree.id, "problem": tree.problem, "answer": "528"}]
    fmt = make_format("openlongcot", root_rating=True, separator=" ")
    assert next(iter(fmt.export(tree)))["text"] == to_openlongcot(tree, root_rating=True, separator=" ")


def test_format_export_refusal_propagates():
    tree = felix()
    tree.nodes[2].text = "oops <end_of_thought>"
    with pytest.raises(ExportRefused):
        list(OpenLongCoTFormat().export(tree))


@pytest.mark.parametrize(("row", "message"), [
    ({}, "missing 'text' (the OpenLongCoT row)"),
    ({"text": None}, "missing 'text' (the OpenLongCoT row)"),
    ({"text": 3}, "'text' is int, expected a string"),
    ({"text": b"bytes"}, "'text' is bytes, expected a string"),
])
def test_format_check_reports_a_missing_or_mistyped_text(row, message):
    [finding] = OpenLongCoTFormat().check(row)
    assert (finding.severity, finding.message) == ("error", message)


def test_format_check_reads_the_text_column():
    fmt = OpenLongCoTFormat()
    assert fmt.check({"text": to_openlongcot(felix()), "id": "x"}) == []
    assert fmt.check({"text": ROOT + "junk"})[0].severity == "error"


def test_format_is_registered_and_declares_its_files():
    fmt = make_format("openlongcot")
    assert isinstance(fmt, OpenLongCoTFormat)
    assert (fmt.name, fmt.file_kind, fmt.columns) == ("openlongcot", "parquet", ("text",))
