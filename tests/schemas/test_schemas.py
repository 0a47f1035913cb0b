"""The shipped schemas: they load from the package, agree with the code, and accept what cotgen writes.

jsonschema is not a dependency, so `validate` below checks the subset of JSON Schema these
files use (type, enum, required, properties, additionalProperties, items, $ref, minimum,
maximum, minItems, minLength, pattern) and fails loudly on any other keyword.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from importlib.resources import files
from typing import Any

import pytest

from cotgen.formats.marco import dumps_marco
from cotgen.formats.openlongcot import KIND_TAGS, MISSPELLED_RATING, TAGS
from cotgen.tree import KINDS, RATINGS, Node, Tree, TreeStats

SCHEMAS = files("cotgen") / "schemas"
_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}  # fmt: skip
_KNOWN = {
    "$schema", "$id", "$defs", "title", "description", "type", "enum", "required", "properties",
    "additionalProperties", "items", "$ref", "minimum", "maximum", "minItems", "minLength", "pattern",
}  # fmt: skip


def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def _is(value: Any, type_name: str) -> bool:
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[type_name])


def validate(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> list[str]:
    """Every way `value` breaks `schema`, as 'path: problem' strings."""
    unknown = set(schema) - _KNOWN
    assert not unknown, f"the test validator does not know {unknown}"
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return validate(value, target, root, where)
    out: list[str] = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_is(value, t) for t in types):
            return [f"{where}: {type(value).__name__} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            out.append(f"{where}: shorter than {schema['minLength']}")
        # ECMA-262 `$` is the very end; Python's would also match before a final newline.
        if "pattern" in schema and not re.search(re.sub(r"\$$", r"\\Z", schema["pattern"]), value):
            out.append(f"{where}: does not match {schema['pattern']!r}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{where}: fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            out += validate(item, schema.get("items", {}), root, f"{where}[{i}]")
    if isinstance(value, dict):
        out += [f"{where}: missing {key}" for key in schema.get("required", []) if key not in value]
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                out += validate(item, props[key], root, f"{where}.{key}")
            elif schema.get("additionalProperties", True) is False:
                out.append(f"{where}: unexpected key {key}")
    return out


def sample_tree() -> Tree:
    t = Tree.new("What is 2 + 3 * 4?", answer="14", source="hand", model="none", config={"c_puct": 1.5})
    t.add(0, "step", "3 * 4 = 12.", value=0.7, visits=3, rating="positive", q_estimate=0.6, logprob=-0.4)
    t.add(1, "critic", "Fine.")
    t.add(1, "conclusion", "\\boxed{14}", value=1.0, visits=1, terminal=True, correct=True, rating="positive")
    return t


# -- tree.schema.json -------------------------------------------------------------------


def test_schemas_ship_inside_the_package_and_name_themselves():
    for name in ("tree.schema.json", "marco.schema.json"):
        schema = load(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith("/" + name)
    assert (SCHEMAS / "openlongcot.ebnf").is_file()


def test_tree_schema_has_exactly_the_record_fields():
    schema = load("tree.schema.json")
    row = sample_tree().to_row()
    assert set(schema["properties"]) == set(row)
    assert set(schema["$defs"]["node"]["properties"]) == {f.name for f in fields(Node)}
    assert set(schema["$defs"]["stats"]["properties"]) == {f.name for f in fields(TreeStats)}
    assert schema["$defs"]["node"]["properties"]["kind"]["enum"] == list(KINDS)
    assert schema["$defs"]["node"]["properties"]["rating"]["enum"] == list(RATINGS)


def test_tree_schema_accepts_what_cotgen_writes():
    schema = load("tree.schema.json")
    assert validate(sample_tree().to_row(), schema, schema) == []
    assert validate(json.loads(json.dumps(sample_tree().to_row())), schema, schema) == []


@pytest.mark.parametrize(("breaks", "problem"), [
    (lambda r: r.pop("problem"), "$: missing problem"),
    (lambda r: r.update(nodes=[]), "$.nodes: fewer than 1 items"),
    (lambda r: r["nodes"][1].update(kind="thought"), "$.nodes[1].kind: 'thought' not in"),
    (lambda r: r["nodes"][1].update(rating="good"), "$.nodes[1].rating: 'good' not in"),
    (lambda r: r["nodes"][1].update(value=1.5), "$.nodes[1].value: 1.5 > 1"),
    (lambda r: r["nodes"][1].update(id=True), "$.nodes[1].id: bool is not"),
    (lambda r: r["nodes"][0].update(parent=-2), "$.nodes[0].parent: -2 < -1"),
    (lambda r: r["nodes"][0].update(extra=1), "$.nodes[0]: unexpected key extra"),
    (lambda r: r["stats"].update(seconds="3"), "$.stats.seconds: str is not"),
])
def test_tree_schema_rejects_broken_records(breaks, problem):
    schema = load("tree.schema.json")
    row = sample_tree().to_row()
    breaks(row)
    assert any(p.startswith(problem) for p in validate(row, schema, schema)), validate(row, schema, schema)


# -- marco.schema.json ------------------------------------------------------------------


def test_marco_schema_accepts_the_exact_shape_and_nothing_else():
    schema = load("marco.schema.json")
    good = {"instruction": "q", "response": "<Thought>\na\n\nb\n</Thought>\n<Output>\n42\n</Output>"}
    assert validate(json.loads(dumps_marco([good, good])), schema, schema) == []
    for response in (
        good["response"][: -len("\n</Output>")],  # truncated
        good["response"] + "\n",
        " " + good["response"],
        good["response"].replace("</Thought>\n<Output>", "</Thought><Output>"),
    ):
        assert validate([{"instruction": "q", "response": response}], schema, schema) != [], response
    assert validate({"instruction": "q", "response": good["response"]}, schema, schema) == [
        "$: dict is not ['array']"
    ]
    assert validate([{**good, "system": "s"}], schema, schema) == ["$[0]: unexpected key system"]


# -- openlongcot.ebnf -------------------------------------------------------------------


def test_grammar_names_every_tag_and_every_known_fault():
    grammar = (SCHEMAS / "openlongcot.ebnf").read_text(encoding="utf-8")
    for tag in (*TAGS, *KIND_TAGS.values(), MISSPELLED_RATING):
        assert f'"{tag}"' in grammar, tag
    for fault in ("duplicated-id bug", "double-wrapped root bug", "misspelling"):
        assert fault in grammar
