"""A corpus of hostile inputs, built by code: every way a file or run folder can be broken
that an adversarial user (or a crashed writer) has produced, plus a few large-but-valid ones.

Each case is a builder that writes one input (a file or a run folder) under a folder and
returns its path, with what `cotgen validate` must say about it:

- "valid": exit 0; every other reader must read it too;
- "invalid": exit 1 with a row-level error whose message holds `needle`;
- "unreadable": exit 1 with a file-level error (row None) whose message holds `needle`;
- "usage": exit 2, the message holding `needle`.

Large inputs (a 50 MB row, 100,000 nested brackets, a 10,000-deep tree) are generated here,
never stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cotgen.formats import make_format
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree, arrow_schema


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Path]
    verdict: str  # valid | invalid | unreadable | usage
    needle: str = ""  # words validate's message must hold
    large: bool = False  # generated big input: run by the slow tests only

    @property
    def tree_input(self) -> bool:
        """Tree shards or a run folder (the cases built before the OpenLongCoT section)."""
        return CASES.index(self) < CASES.index(by_name("root_without_end_of_thought"))


CASES: list[Case] = []


def case(verdict: str, needle: str = "", large: bool = False):
    def register(fn: Callable[[Path], Path]) -> Callable[[Path], Path]:
        CASES.append(Case(fn.__name__, fn, verdict, needle, large))
        return fn

    return register


# -- building blocks ------------------------------------------------------------------


def good_tree(i: int = 0, steps: int = 2) -> Tree:
    t = Tree.new(f"What is {i} + {i}? Problem {i}.", str(2 * i), model="tiny", source="corpus")
    parent = 0
    for s in range(steps):
        parent = t.add(parent, "step", f" Step {s} of adding {i} and {i}.", rating="positive", value=0.8, visits=2).id
    c = t.add(parent, "critic", "Check the sum.")
    t.add(c.id, "refine", f"The sum is {2 * i}.", rating="positive", value=0.9)
    t.add(parent, "conclusion", f"So the answer is \\boxed{{{2 * i}}}.", terminal=True, correct=True,
          rating="positive", value=1.0, visits=1)
    return t


def rows(n: int = 3) -> list[dict[str, Any]]:
    return [good_tree(i).to_row() for i in range(n)]


def shard(path: Path, table_rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> Path:
    """A Parquet file of tree rows; without `schema` Arrow infers one (so mistyped values keep their type)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(table_rows, schema=schema)
    pq.write_table(table, path)
    return path


def good_shard(path: Path, n: int = 3) -> Path:
    return shard(path, rows(n), arrow_schema())


def ol_text(i: int = 0, separator: str = "\n") -> str:
    return next(make_format("openlongcot", separator=separator).export(good_tree(i)))["text"]


def record(father: object, local: object, thought: str, rating: str | None = "<positive_rating>") -> str:
    out = (f"<start_of_father_id>{father}<end_of_father_id><start_of_local_id>{local}<end_of_local_id>"
           f"<start_of_thought>{thought}<end_of_thought>")
    if rating is not None:
        out += f"<start_of_rating>{rating}<end_of_rating>"
    return out


ROOT = record(-1, 0, "<problem>What is 1+1?", None)


def text_file(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def run_folder(path: Path, n: int = 3) -> Path:
    writer = TreeShardWriter(path, settings={"model": "tiny", "search": {"simulations": 2}})
    writer.write([good_tree(i) for i in range(n)])
    return path


def with_row(**changes: Any) -> list[dict[str, Any]]:
    out = rows(3)
    out[1].update(changes)
    return out


def with_node(**changes: Any) -> list[dict[str, Any]]:
    out = rows(3)
    out[1]["nodes"][1].update(changes)
    return out


def marco(path: Path, records: Any) -> Path:
    return text_file(path, json.dumps(records, ensure_ascii=False, indent=4) + "\n")


MARCO_OK = {"instruction": "What is 1+1?", "response": "<Thought>\n1 and 1 make 2.\n</Thought>\n<Output>\n2\n</Output>"}


# -- tree shards: records of the wrong shape ------------------------------------------


@case("invalid", "field 'problem' is null")
def null_problem(d: Path) -> Path:
    return shard(d / "t.parquet", with_row(problem=None), arrow_schema())


@case("invalid", "field 'id' is null")
def null_tree_id(d: Path) -> Path:
    return shard(d / "t.parquet", with_row(id=None), arrow_schema())


@case("invalid", "the tree id is an int")
def int_tree_id(d: Path) -> Path:
    out = rows(3)
    for i, r in enumerate(out):
        r["id"] = 1000 + i
    return shard(d / "t.parquet", out)


@case("invalid", "field 'text' is null")
def null_node_text(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(text=None), arrow_schema())


@case("invalid", "field 'kind' is null")
def null_node_kind(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(kind=None), arrow_schema())


@case("invalid", "field 'value' is null")
def null_node_value(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(value=None), arrow_schema())


@case("invalid", "field 'parent' is null")
def null_node_parent(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(parent=None), arrow_schema())


@case("invalid", "field 'nodes' is a string")
def nodes_column_of_strings(d: Path) -> Path:
    out = rows(3)
    for r in out:
        r["nodes"] = json.dumps(r["nodes"])
    return shard(d / "t.parquet", out)


@case("invalid", "field 'nodes' is null")
def null_nodes(d: Path) -> Path:
    return shard(d / "t.parquet", with_row(nodes=None), arrow_schema())


@case("invalid", "expected a node record")
def nodes_list_of_ints(d: Path) -> Path:
    out = rows(3)
    for r in out:
        r["nodes"] = [1, 2, 3]
    return shard(d / "t.parquet", out)


@case("invalid", "no kind, text field")
def nodes_missing_fields(d: Path) -> Path:
    out = rows(3)
    for r in out:
        r["nodes"] = [{"id": n["id"], "parent": n["parent"]} for n in r["nodes"]]
    return shard(d / "t.parquet", out)


@case("invalid", "field 'terminal' is a string")
def node_terminal_as_string(d: Path) -> Path:
    out = rows(3)
    for r in out:
        for n in r["nodes"]:
            n["terminal"] = "yes" if n["terminal"] else "no"
    return shard(d / "t.parquet", out)


@case("invalid", "stats field 'simulations' is null")
def null_stats_field(d: Path) -> Path:
    out = rows(3)
    out[1]["stats"]["simulations"] = None
    return shard(d / "t.parquet", out, arrow_schema())


@case("invalid", "field 'stats' is a string")
def stats_column_of_strings(d: Path) -> Path:
    # Round 3 (issue 19 item 11): an AttributeError in every reader.
    out = rows(3)
    for r in out:
        r["stats"] = json.dumps(r["stats"])
    return shard(d / "t.parquet", out)


@case("invalid", "field 'config' is JSON nested too deeply")
def config_nested_too_deep(d: Path) -> Path:
    return shard(d / "t.parquet", with_row(config="[" * 100_000 + "]" * 100_000), arrow_schema())


@case("invalid", "field 'config' is not a JSON object")
def config_not_json(d: Path) -> Path:
    return shard(d / "t.parquet", with_row(config="{not json"), arrow_schema())


@case("invalid", "duplicate tree id")
def duplicate_ids_in_one_shard(d: Path) -> Path:
    out = rows(3)
    out.append(dict(out[0]))
    return shard(d / "t.parquet", out, arrow_schema())


# -- tree shards: well typed, broken invariants ---------------------------------------


@case("invalid", "does not exist before it")
def cyclic_tree(d: Path) -> Path:
    out = rows(3)
    nodes = out[1]["nodes"]
    nodes[1]["parent"], nodes[2]["parent"] = nodes[2]["id"], nodes[1]["id"]  # 1 <-> 2
    return shard(d / "t.parquet", out, arrow_schema())


@case("invalid", "does not exist before it")
def self_parent(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(parent=1), arrow_schema())


@case("invalid", "parent 99 does not exist")
def orphan_node(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(parent=99), arrow_schema())


@case("invalid", "expected exactly one root")
def two_roots(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(parent=-1), arrow_schema())


@case("invalid", "duplicate id")
def duplicate_node_ids(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(id=0), arrow_schema())


@case("invalid", "the tree has no nodes")
def empty_node_list(d: Path) -> Path:
    return shard(d / "t.parquet", with_row(nodes=[]), arrow_schema())


@case("invalid", "outside [0, 1]")
def node_value_nan(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(value=float("nan")), arrow_schema())


@case("invalid", "outside [0, 1]")
def node_value_too_big(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(value=5.0), arrow_schema())


@case("invalid", "unknown kind 'thought'")
def unknown_kind(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(kind="thought"), arrow_schema())


@case("invalid", "unknown rating 'great'")
def unknown_rating(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(rating="great"), arrow_schema())


@case("invalid", "a critic's parent must be")
def critic_under_the_root(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(kind="critic", rating="unknown"), arrow_schema())


@case("invalid", "'correct' is set on a node that is not terminal")
def correct_on_a_step(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(correct=True), arrow_schema())


@case("invalid", "negative visit count")
def negative_visits(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(visits=-3), arrow_schema())


# -- tree shards: whole-file damage -------------------------------------------------


@case("unreadable", "not a readable Parquet file")
def truncated_parquet(d: Path) -> Path:
    p = good_shard(d / "t.parquet")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


@case("unreadable", "not a readable Parquet file")
def parquet_footer_garbage(d: Path) -> Path:
    p = good_shard(d / "t.parquet")
    data = bytearray(p.read_bytes())
    data[-12:-4] = b"\xff" * 8  # the footer length
    p.write_bytes(bytes(data))
    return p


@case("unreadable", "empty file")
def zero_byte_parquet(d: Path) -> Path:
    return text_file(d / "t.parquet", b"")


@case("valid")
def zero_row_shard(d: Path) -> Path:
    return shard(d / "t.parquet", [], arrow_schema())


@case("valid")
def shard_with_extra_columns(d: Path) -> Path:
    out = rows(3)
    for r in out:
        r["extra"] = "kept"
    return shard(d / "t.parquet", out)


@case("valid")
def tree_text_with_structural_tags(d: Path) -> Path:
    # A valid tree; OpenLongCoT export refuses it (counted), never writes it unparsable.
    return shard(d / "t.parquet", with_node(text="a <end_of_thought> inside"), arrow_schema())


@case("valid", large=True)
def ten_thousand_deep_tree(d: Path) -> Path:
    t = Tree.new("Count down from 10,000.", "0")
    parent = 0
    for i in range(10_000):
        parent = t.add(parent, "step", f" {10_000 - i}.").id
    t.add(parent, "conclusion", "\\boxed{0}", terminal=True, correct=True)
    return shard(d / "t.parquet", [t.to_row()], arrow_schema())


@case("valid", large=True)
def five_mb_node_text(d: Path) -> Path:
    return shard(d / "t.parquet", with_node(text=" x" * 2_500_000), arrow_schema())


# -- run folders ------------------------------------------------------------------


@case("unreadable", "expected a JSON object")
def manifest_is_an_array(d: Path) -> Path:
    run = run_folder(d / "run")
    (run / "manifest.json").write_text("[1, 2, 3]\n")
    return run


@case("unreadable", "cannot read the run manifest")
def manifest_not_json(d: Path) -> Path:
    run = run_folder(d / "run")
    (run / "manifest.json").write_text('{"shards": [')
    return run


@case("unreadable", "nested too deeply")
def manifest_nested_too_deep(d: Path) -> Path:
    run = run_folder(d / "run")
    (run / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    return run


@case("unreadable", "cannot read the run manifest")
def manifest_not_utf8(d: Path) -> Path:
    run = run_folder(d / "run")
    (run / "manifest.json").write_bytes(b'{"a": "\xff\xfe"}')
    return run


@case("unreadable", "unfinished")
def run_without_manifest(d: Path) -> Path:
    # What a writer killed before its first manifest write, or a half-done copy, leaves.
    run = run_folder(d / "run")
    (run / "manifest.json").unlink()
    return run


@case("unreadable", "unfinished")
def run_marked_running(d: Path) -> Path:
    run = run_folder(d / "run")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["status"] = "running"
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


@case("valid")
def run_with_stale_temporary_file(d: Path) -> Path:
    run = run_folder(d / "run")
    (run / "trees" / ".part-00001.parquet.tmp-99999").write_bytes(b"PAR1 half a shard")
    return run


@case("invalid", "duplicate tree id")
def run_with_a_tree_in_two_shards(d: Path) -> Path:
    run = run_folder(d / "run")
    good_shard(run / "trees" / "part-00001.parquet", 1)  # tree 0 again
    return run


@case("valid")
def run_with_no_shards_yet(d: Path) -> Path:
    run = d / "run"
    (run / "trees").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"shards": [], "counts": {"trees": 0, "failed": 0}}))
    return run


@case("usage", "is a folder, expected a file")
def shard_name_on_a_folder(d: Path) -> Path:
    run = run_folder(d / "run")
    (run / "trees" / "part-00001.parquet").mkdir()
    return run


@case("invalid", "id outside 0..2147483647")
def negative_node_id(d: Path) -> Path:
    # Issue 19 item 10: export would write an OpenLongCoT row that validate refuses.
    out = rows(3)
    nodes = out[1]["nodes"]
    old = nodes[1]["id"]
    nodes[1]["id"] = -5
    for n in nodes:
        if n["parent"] == old:
            n["parent"] = -5
    return shard(d / "t.parquet", out, arrow_schema())


@case("invalid", "id outside 0..2147483647")
def node_ids_beyond_2_53(d: Path) -> Path:
    # Two ids that JavaScript numbers cannot tell apart (view's data-node-id collided).
    out = rows(3)
    nodes = out[1]["nodes"]
    remap = {n["id"]: (2**53 + n["id"] if n["id"] else 0) for n in nodes}
    for n in nodes:
        n["id"] = remap[n["id"]]
        n["parent"] = remap.get(n["parent"], n["parent"])
    return shard(d / "t.parquet", out)


# -- OpenLongCoT text --------------------------------------------------------------


@case("invalid", "its thought has no <end_of_thought> before the next record")
def root_without_end_of_thought(d: Path) -> Path:
    row = record(-1, 0, "<problem>What is 1+1?", None).replace("<end_of_thought>", "") + record(0, 1, "2")
    return text_file(d / "ol.txt", row + "\n")


@case("invalid", "LLaMA-O1's double-wrapped root bug")
def double_wrapped_root(d: Path) -> Path:
    inner = record(-1, 0, "<problem>What is 1+1?", None)
    return text_file(d / "ol.txt", record(-1, 0, inner, None) + "<end_of_thought>" + record(0, 1, "2") + "\n")


@case("invalid", "<unknow_rating>")
def misspelled_rating(d: Path) -> Path:
    return text_file(d / "ol.txt", ROOT + record(0, 1, "<critic>c", "<unknow_rating>") + "\n")


@case("invalid", "is not an integer")
def non_integer_local_id(d: Path) -> Path:
    return text_file(d / "ol.txt", ROOT + record(0, "one", "a") + "\n")


@case("invalid", "local id of 5000 digits")
def five_thousand_digit_local_id(d: Path) -> Path:
    # Beyond Python's int-string limit: a ValueError aborted the whole file (item 11).
    rows_ = [ROOT + record(0, "7" * 5000, "a"), ROOT + record(0, 1, "b")]
    return text_file(d / "ol.txt", "\n".join(rows_) + "\n")


@case("invalid", "duplicate local id 1")
def duplicated_local_id(d: Path) -> Path:
    return text_file(d / "ol.txt", ROOT + record(0, 1, "a") + record(0, 1, "b") + "\n")


@case("invalid", "father id 7 of node 2 was not declared")
def undeclared_father(d: Path) -> Path:
    return text_file(d / "ol.txt", ROOT + record(0, 1, "a") + record(7, 2, "b") + "\n")


@case("invalid", "expected <start_of_father_id>, found '<start_of_'")
def whitespace_only_rows(d: Path) -> Path:
    return text_file(d / "ol.txt", ol_text(0, " ") + "\n \t \n" + ol_text(1, " ") + "\n" + "   \t" + ROOT[:10] + "\n")


@case("invalid", "expected <start_of_father_id>, found '<yyy", large=True)
def fifty_mb_junk_line(d: Path) -> Path:
    return text_file(d / "ol.txt", "<" + "y" * 50_000_000 + "\n")


@case("valid", large=True)
def fifty_mb_valid_step(d: Path) -> Path:
    return text_file(d / "ol.txt", ol_text(0, " ").replace(" Step 0 of", " " + "x" * 50_000_000) + "\n")


@case("unreadable", "binary file")
def nul_bytes_in_text(d: Path) -> Path:
    return text_file(d / "ol.txt", ol_text(0, " ").encode() + b"\x00\x00" + b"\n")


@case("invalid", "invalid UTF-8")
def invalid_utf8_line(d: Path) -> Path:
    return text_file(d / "ol.txt", ol_text(0, " ").encode() + b"\n" + ol_text(1, " ").encode().replace(b"What", b"Wh\xffat") + b"\n")


@case("valid")
def crlf_and_blank_lines(d: Path) -> Path:
    return text_file(d / "ol.txt", ("\r\n\r\n" + ol_text(0, " ") + "\r\n\r\n" + ol_text(1, " ") + "\r\n").encode())


@case("valid")  # a byte order mark before the first row is read past, as editors write it
def utf8_bom(d: Path) -> Path:
    return text_file(d / "ol.txt", "\ufeff" + ol_text(0, " ") + "\n")


@case("invalid", "duplicate tree id")
def openlongcot_jsonl_duplicate_ids(d: Path) -> Path:
    lines = [json.dumps({"text": ol_text(i), "id": "same-id"}) for i in range(2)]
    return text_file(d / "ol.jsonl", "\n".join(lines) + "\n")


@case("invalid", "field 'id' is not a string")
def openlongcot_jsonl_int_id(d: Path) -> Path:
    return text_file(d / "ol.jsonl", json.dumps({"text": ol_text(), "id": 7}) + "\n")


@case("invalid", "text")
def openlongcot_jsonl_null_text(d: Path) -> Path:
    return text_file(d / "ol.jsonl", json.dumps({"text": ol_text()}) + "\n" + json.dumps({"text": None}) + "\n")


@case("invalid", "expected an object")
def jsonl_line_that_is_an_array(d: Path) -> Path:
    return text_file(d / "ol.jsonl", json.dumps({"text": ol_text()}) + "\n[1, 2]\n")


@case("invalid", "nested too deeply")
def jsonl_line_nested_too_deep(d: Path) -> Path:
    return text_file(d / "ol.jsonl", json.dumps({"text": ol_text()}) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")


@case("invalid", "not valid JSON")
def jsonl_truncated_line(d: Path) -> Path:
    return text_file(d / "ol.jsonl", json.dumps({"text": ol_text()}) + '\n{"text": "<start_of\n')


@case("invalid", "duplicate tree id")
def openlongcot_parquet_duplicate_ids(d: Path) -> Path:
    p = d / "ol.parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": [ol_text(0), ol_text(1)], "id": ["x", "x"]}), p)
    return p


@case("invalid", "text")
def openlongcot_parquet_int_text(d: Path) -> Path:
    p = d / "ol.parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": [1, 2]}), p)
    return p


# -- Marco-o1 JSON ------------------------------------------------------------------


@case("unreadable", "nested too deeply")
def marco_nested_too_deep(d: Path) -> Path:
    return text_file(d / "m.json", "[" * 100_000 + "]" * 100_000)


@case("unreadable", "nested too deeply")
def marco_nested_unclosed(d: Path) -> Path:
    return text_file(d / "m.json", "[" * 100_000)


@case("unreadable", "expected an array")
def marco_an_object(d: Path) -> Path:
    return text_file(d / "m.json", json.dumps(MARCO_OK))


@case("invalid", "")
def marco_array_of_numbers(d: Path) -> Path:
    return text_file(d / "m.json", "[1, 2, 3]")


@case("invalid", "response")
def marco_missing_response(d: Path) -> Path:
    return marco(d / "m.json", [MARCO_OK, {"instruction": "q"}])


@case("invalid", "response")
def marco_null_response(d: Path) -> Path:
    return marco(d / "m.json", [MARCO_OK, {"instruction": "q", "response": None}])


@case("invalid", "</Output>")
def marco_truncated_record(d: Path) -> Path:
    return marco(d / "m.json", [MARCO_OK, {"instruction": "q", "response": MARCO_OK["response"][:-10]}])


@case("unreadable", "not valid JSON")
def marco_truncated_file(d: Path) -> Path:
    return text_file(d / "m.json", json.dumps([MARCO_OK, MARCO_OK])[:-20])


@case("unreadable", "invalid UTF-8")
def marco_invalid_utf8(d: Path) -> Path:
    return text_file(d / "m.json", b'[{"instruction": "\xff", "response": "x"}]')


@case("valid")
def marco_empty_array(d: Path) -> Path:
    return text_file(d / "m.json", "[]\n")


@case("invalid", "")
def marco_lone_surrogate(d: Path) -> Path:
    return text_file(d / "m.json", '[{"instruction": "\\ud800", "response": "<Thought>\\nx\\n</Thought>\\n<Output>\\n1\\n</Output>"}]')


@case("invalid", "")
def marco_nan_literal(d: Path) -> Path:
    return text_file(d / "m.json", '[{"instruction": NaN, "response": Infinity}]')


@case("valid", large=True)
def marco_megabytes_of_whitespace(d: Path) -> Path:
    return text_file(d / "m.json", " " * 5_000_000 + json.dumps([MARCO_OK]) + " " * 5_000_000)


# -- other kinds of files ----------------------------------------------------------------


@case("invalid", "")
def sft_messages_of_the_wrong_type(d: Path) -> Path:
    p = d / "sft.parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"messages": ["not a list", "nor this"]}), p)
    return p


@case("unreadable", "do not match any format")
def parquet_of_other_columns(d: Path) -> Path:
    p = d / "x.parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"a": [1], "b": ["x"]}), p)
    return p


@case("unreadable", "cannot tell what this file holds")
def unknown_extension_text(d: Path) -> Path:
    return text_file(d / "notes.md", "# just notes\n")


@case("unreadable", "binary")
def random_bytes(d: Path) -> Path:
    return text_file(d / "blob.bin", os.urandom(4096).replace(b"PAR1", b"PAR2") + b"\x00")


@case("usage", "not a run folder")
def plain_folder(d: Path) -> Path:
    (d / "plain").mkdir(parents=True)
    (d / "plain" / "readme.txt").write_text("hello\n")
    return d / "plain"


@case("usage", "no such file or folder")
def dangling_symlink(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "link.parquet").symlink_to(d / "gone.parquet")
    return d / "link.parquet"


@case("usage", "no such file or folder")
def symlink_loop(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "loop.txt").symlink_to(d / "loop.txt")
    return d / "loop.txt"


VALID_FOR_EXPORT = {"zero_row_shard", "run_with_no_shards_yet", "marco_empty_array"}  # nothing to export


def by_name(name: str) -> Case:
    return next(c for c in CASES if c.name == name)
