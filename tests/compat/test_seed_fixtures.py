"""The seed formats against real files others wrote: the OpenLongCoT-Pretrain row and Marco-o1's CoT_demo."""

from __future__ import annotations

import re

from cotgen.formats.marco import check_marco_record, dumps_marco, loads_marco
from cotgen.formats.openlongcot import check_openlongcot, parse_openlongcot, to_openlongcot

RECORD_START = "<start_of_father_id>"


def seed_row(shared) -> str:
    return (shared / "fixtures" / "openlongcot_seed_row.txt").read_text(encoding="utf-8")


def raw_thoughts(text: str) -> list[str]:
    """Every thought exactly as it stands in the file, found without the parser."""
    return re.findall(r"<start_of_thought>(.*?)<end_of_thought>", text, re.S)


def test_seed_row_parses_into_its_five_nodes(shared):
    tree = parse_openlongcot(seed_row(shared))
    assert [(n.id, n.parent, n.kind, n.rating) for n in tree.nodes] == [
        (0, -1, "problem", "unknown"),
        (1, 0, "step", "positive"),
        (2, 1, "step", "positive"),
        (3, 1, "critic", "unknown"),
        (4, 1, "critic", "unknown"),
    ]
    tree.check()


def test_seed_row_thoughts_are_kept_byte_for_byte(shared):
    text = seed_row(shared)
    tree = parse_openlongcot(text)
    thoughts = raw_thoughts(text)
    assert len(thoughts) == 5
    prefixes = ["<problem>", "", "", "<critic>", "<critic>"]
    assert [p + n.text for p, n in zip(prefixes, tree.nodes, strict=True)] == thoughts
    assert tree.problem == thoughts[0].removeprefix("<problem>")
    assert tree.nodes[2].text.startswith(" If he drives")  # the published leading space
    assert "2*66=<<2*66=132>>132" in tree.nodes[1].text  # GSM8K calculator marks are not tags


def test_seed_row_serializes_back_to_the_same_records(shared):
    text = seed_row(shared)
    again = to_openlongcot(parse_openlongcot(text), separator=" ")
    assert again == text.rstrip("\n")  # the file ends with a newline after the row
    assert again.split(" " + RECORD_START) == text.rstrip("\n").split(" " + RECORD_START)


def test_seed_row_checks_clean(shared):
    assert check_openlongcot(seed_row(shared)) == []


def test_marco_demo_round_trips_byte_for_byte(shared):
    raw = (shared / "fixtures" / "marco_cot_demo.json").read_bytes()
    records = loads_marco(raw.decode("utf-8"), "marco_cot_demo.json")
    assert len(records) == 125
    assert dumps_marco(records).encode("utf-8") == raw


def test_marco_demo_findings_are_exactly_the_known_bad_records(shared):
    text = (shared / "fixtures" / "marco_cot_demo.json").read_text(encoding="utf-8")
    findings = {i: check_marco_record(r) for i, r in enumerate(loads_marco(text))}
    errors = {i: [f.message for f in fs if f.severity == "error"] for i, fs in findings.items()}
    warnings = {i: [f.message for f in fs if f.severity == "warning"] for i, fs in findings.items()}
    assert {i: m for i, m in errors.items() if m} == {
        8: ["truncated: no </Output>"],
        109: ["truncated: no </Output>"],
    }
    assert sorted(i for i, m in warnings.items() if m) == [1, 23, 59, 72, 112]
    assert all("U+FFFD" in m for ms in warnings.values() for m in ms)
