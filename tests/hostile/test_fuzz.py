"""Fuzz the readers of untrusted text: the OpenLongCoT parser, the Marco-o1 reader and the
tree-shard reader raise nothing but cotgen's own errors, whatever they are given, and what
they accept, the rest of cotgen reads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cotgen.errors import CotgenError
from cotgen.formats import make_format
from cotgen.formats.marco import check_marco_record, dumps_marco, loads_marco
from cotgen.formats.openlongcot import TAGS, check_openlongcot, parse_openlongcot
from cotgen.io.readers import TreeShardReader
from cotgen.tree import KINDS, RATINGS, Tree, arrow_schema, broken_invariants
from cotgen.validate import validate_path

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

# -- OpenLongCoT: rows assembled from the grammar's own pieces, and its near misses --------

PIECES = [
    *TAGS, "<unknow_rating>", "<start_of_meta>", "<end_of_", "<problem>", "<critic>", "<refine>",
    "<conclusion>", "<positive_rating>", "<negative_rating>", "<unknown_rating>", "-1", "0", "1", "2",
    "7", "-3", "x", "99999999999999999999", " ", "\n", "\t", "\u00a0", "\ufeff", "\ud800", "\ufffd",
    "\\boxed{2}", "<", ">", "数学",
]  # fmt: skip


def record(father, local, thought, rating):
    out = (f"<start_of_father_id>{father}<end_of_father_id><start_of_local_id>{local}<end_of_local_id>"
           f"<start_of_thought>{thought}<end_of_thought>")
    return out + (f"<start_of_rating>{rating}<end_of_rating>" if rating is not None else "")


ids = st.one_of(st.integers(-2, 6), st.sampled_from(["x", "", "1.5", " 1", "٣"]))
thoughts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=4).map("".join)
ratings = st.one_of(st.none(), st.sampled_from(["<positive_rating>", "<negative_rating>", "<unknown_rating>",
                                                "<unknow_rating>", "<great>", ""]))


@st.composite
def near_rows(draw):
    """Rows close to valid: mostly well-formed records with wrong ids, tags or ratings."""
    parts = [record(-1, 0, "<problem>" + draw(thoughts), draw(st.sampled_from([None, "<unknown_rating>"])))]
    for _ in range(draw(st.integers(0, 5))):
        parts.append(record(draw(ids), draw(ids), draw(thoughts), draw(ratings)))
    text = draw(st.sampled_from(["\n", " ", "", "\r\n"])).join(parts)
    if draw(st.booleans()):  # cut, splice or duplicate a piece somewhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["", *PIECES])) + text[at + draw(st.integers(0, 20)):]
    return text


rows = st.one_of(near_rows(), st.lists(st.sampled_from(PIECES), max_size=30).map("".join), st.text(max_size=200))


@FUZZ
@given(text=rows)
def test_openlongcot_parser_raises_only_its_own_error(text):
    try:
        tree = parse_openlongcot(text)
    except CotgenError:
        return
    # Parsed: the tree is well typed, and check agrees there is no parse error.
    assert isinstance(tree, Tree)
    parse_errors = [f for f in check_openlongcot(text)
                    if f.severity == "error" and f.offset is not None and "surrogate" not in f.message]
    assert not parse_errors


@FUZZ
@given(text=rows)
def test_openlongcot_check_never_raises(text):
    for finding in check_openlongcot(text):
        assert finding.severity in ("error", "warning")
        assert isinstance(finding.message, str) and finding.message


@FUZZ
@given(text=near_rows())
def test_what_validate_accepts_exports(text):
    # Whatever has no error finding must export back to OpenLongCoT or be refused by reason.
    if any(f.severity == "error" for f in check_openlongcot(text)):
        return
    tree = parse_openlongcot(text)
    fmt = make_format("openlongcot")
    try:
        rows_out = list(fmt.export(tree))
    except CotgenError:
        return
    assert rows_out and all(not any(f.severity == "error" for f in fmt.check(r)) for r in rows_out)


# -- Marco-o1: JSON of any shape -------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
              st.sampled_from(["<Thought>\nx\n</Thought>\n<Output>\n1\n</Output>", "<Thought>", "</Output>", "\ufffd"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["instruction", "response", "x", ""]), inner, max_size=3)),
    max_leaves=12,
)


@FUZZ
@given(value=json_values)
def test_marco_record_check_never_raises(value):
    for finding in check_marco_record(value):
        assert finding.severity in ("error", "warning")


@FUZZ
@given(value=json_values, cut=st.integers(0, 400), noise=st.sampled_from(["", "[", "]", "{", ",", "\ud800", "NaN", "\x00"]))
def test_marco_reader_raises_only_its_own_error(value, cut, noise):
    text = json.dumps(value if isinstance(value, list) else [value], allow_nan=True)
    text = text[:cut] + noise + text[cut:]
    try:
        records = loads_marco(text, "fuzz.json")
    except CotgenError:
        return
    for obj in records:
        findings = check_marco_record(obj)
        if not any(f.severity == "error" for f in findings):
            # What validate accepts can be written back out as UTF-8 (export, dedupe, push).
            dumps_marco([obj]).encode("utf-8")


def test_a_lone_surrogate_in_an_extra_marco_key_is_an_error():
    # Found by the fuzz test above: validate accepted the record, then writing it out failed.
    good = "<Thought>\nx\n</Thought>\n<Output>\n1\n</Output>"
    record = {"instruction": "\x1b", "": "\ud800", "response": good}
    assert any(f.severity == "error" and "extra key" in f.message for f in check_marco_record(record))
    assert not any(f.severity == "error" for f in check_marco_record({"instruction": "q", "x": [1], "response": good}))


def test_marco_reader_on_deep_nesting():
    for text in ("[" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":' * 50_000):
        with pytest.raises(CotgenError, match="nested too deeply|not valid JSON"):
            loads_marco(text, "deep.json")


# -- Tree shards: rows of any types, written with whatever schema Arrow infers ----------

node_values = {
    "id": st.one_of(st.integers(-2, 8), st.none(), st.text(max_size=2)),
    "parent": st.one_of(st.integers(-2, 8), st.none()),
    "kind": st.one_of(st.sampled_from([*KINDS, "thought", ""]), st.none()),
    "text": st.one_of(st.text(max_size=10), st.none(), st.sampled_from(["\\boxed{1}", "<end_of_thought>"])),
    "prior": st.one_of(st.floats(allow_nan=True), st.none()),
    "visits": st.one_of(st.integers(-5, 5), st.none()),
    "value": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()),
    "q_estimate": st.one_of(st.floats(0, 1), st.none()),
    "rating": st.one_of(st.sampled_from([*RATINGS, "great"]), st.none()),
    "terminal": st.one_of(st.booleans(), st.none()),
    "correct": st.one_of(st.booleans(), st.none()),
    "tokens": st.one_of(st.integers(0, 9), st.none()),
    "logprob": st.one_of(st.floats(-5, 0), st.none()),
}


@st.composite
def tree_rows(draw):
    good = draw(st.booleans())
    base = Tree.new(draw(st.text(max_size=10)), draw(st.one_of(st.none(), st.text(max_size=3))))
    for _ in range(draw(st.integers(0, 4))):
        base.add(draw(st.integers(0, len(base.nodes) - 1)), draw(st.sampled_from(["step", "critic", "conclusion"])),
                 draw(st.text(min_size=1, max_size=8)))
    row = base.to_row()
    if not good:  # break some fields, keeping each column's type the same across the batch
        for node in row["nodes"]:
            for name in draw(st.lists(st.sampled_from(sorted(node_values)), max_size=3, unique=True)):
                node[name] = draw(node_values[name])
        for name in draw(st.lists(st.sampled_from(["id", "problem", "answer", "config", "error"]), max_size=2, unique=True)):
            row[name] = draw(st.one_of(st.none(), st.text(max_size=5), st.sampled_from(["{", "[]", "[[[", "{}"])))
    return row


def _cell_types(rows_):
    """Arrow refuses a column whose cells differ in type; keep to examples it can write."""
    try:
        return pa.Table.from_pylist(rows_, schema=arrow_schema())
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None


@FUZZ
@given(batch=st.lists(tree_rows(), min_size=1, max_size=4))
def test_tree_shard_reader_raises_only_cotgen_errors(batch, tmp_path_factory):
    table = _cell_types(batch)
    assume(table is not None)
    path = Path(tmp_path_factory.mktemp("fuzz")) / "part-00000.parquet"
    pq.write_table(table, path)
    try:
        for _, tree in TreeShardReader(path).trees():
            if isinstance(tree, Tree):
                problems = broken_invariants(tree)  # must not raise on any field of any type
                if not problems:
                    assert all(isinstance(n.text, str) and isinstance(n.id, int) for n in tree.nodes)
                    assert not any(isinstance(n.value, float) and math.isnan(n.value) for n in tree.nodes)
                    try:
                        list(make_format("openlongcot").export(tree))
                    except CotgenError:
                        pass
        report = validate_path(path)
        assert report.rows == len(batch)
    except CotgenError:
        pass
