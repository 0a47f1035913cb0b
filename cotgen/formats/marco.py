"""Marco-o1's CoT_demo format: Tree -> {instruction, response} and back, the JSON array file, record checks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from cotgen.answers import extract_answer
from cotgen.errors import DataError
from cotgen.formats.base import (
    REPLACEMENT_WARNING,
    SURROGATE_ERROR,
    ExportRefused,
    Finding,
    lone_surrogate,
)
from cotgen.formats.paths import (
    REFLECTION,
    REFLECTION_KIND,
    told_path,
)
from cotgen.jsontext import JSON_TYPES, parse_json_array
from cotgen.tree import Node, Tree, tree_id

THOUGHT_OPEN, THOUGHT_CLOSE = "<Thought>", "</Thought>"
OUTPUT_OPEN, OUTPUT_CLOSE = "<Output>", "</Output>"
RESPONSE_TAGS = (THOUGHT_OPEN, THOUGHT_CLOSE, OUTPUT_OPEN, OUTPUT_CLOSE)
# Node texts are stripped and joined by a blank line, the paragraph break CoT_demo uses.
JOINER = "\n\n"
KEYS = ("instruction", "response")
# The joins to_marco made: a blank line between two stripped, non-empty node texts. A blank
# line inside a node's text touches whitespace on one side, so it is never split at.
_NODE_BREAK = re.compile(r"(?<=\S)\n\n(?=\S)")
_SHAPE = "<Thought>\\n...\\n</Thought>\\n<Output>\\n...\\n</Output>"


def to_marco(tree: Tree, *, journey: bool = False, max_journey_branches: int = 1) -> dict[str, str]:
    """One Marco-o1 record from the best correct path (or its journey); see marco_record."""
    return marco_record(tree, journey=journey, max_journey_branches=max_journey_branches)[0]


def marco_record(tree: Tree, *, journey: bool = False, max_journey_branches: int = 1) -> tuple[dict[str, str], list[Node]]:
    """One Marco-o1 record from the best correct path (or its journey), and the path's nodes
    after the root (what its provenance counts).

    The thought is the path's node texts after the root, each stripped, joined by JOINER
    (critics left out and refined steps replaced, unless `journey`); the output is the final
    answer of the last node (its \\boxed{} / #### / "the answer is"), else its whole text.
    Raises ExportRefused when there is no correct path or the record would not check clean.
    """
    path, body = told_path(tree, journey, max_journey_branches)
    if not path:
        raise ExportRefused("no correct root-to-leaf path")
    if not tree.problem.strip():
        raise ExportRefused("empty problem (the instruction)")
    reasoning = JOINER.join(t for t in (n.text.strip() for n in body) if t)
    last = path[-1]
    answer = extract_answer(last.text) or last.text.strip()
    if not reasoning:
        raise ExportRefused("empty thought: the path's nodes have no text")
    if not answer:
        raise ExportRefused(f"empty output: node {last.id} states no answer")
    _refuse_tags(body, answer)
    _refuse_reflection(body)
    record = {
        "instruction": tree.problem,
        "response": f"{THOUGHT_OPEN}\n{reasoning}\n{THOUGHT_CLOSE}\n{OUTPUT_OPEN}\n{answer}\n{OUTPUT_CLOSE}",
    }
    return record, path[1:]


def _refuse_tags(body: list[Node], answer: str) -> None:
    """A response tag inside a text would make the record ambiguous to every reader."""
    for tag in RESPONSE_TAGS:
        for node in body:
            if tag in node.text:
                raise ExportRefused(f"node {node.id} ({node.kind}): its text contains {tag}")
        if tag in answer:
            raise ExportRefused(f"the final answer contains {tag}")


def _refuse_reflection(body: list[Node]) -> None:
    """Refuse a record in which parse_marco would read a node's own text as the REFLECTION
    line of a refuted branch (the paragraph before it then rated negative, the one before
    that a critic, and a re-export dropping both). Walks the thought's paragraphs as
    parse_marco does; only journey_path's stand-in nodes may be read as that line."""
    parts: list[tuple[str, Node]] = []
    for node in body:
        text = node.text.strip()
        if text:
            parts.extend((part, node) for part in _NODE_BREAK.split(text))
    i = 0
    while i < len(parts):
        if i + 3 < len(parts) and parts[i + 2][0] == REFLECTION and REFLECTION not in (parts[i][0], parts[i + 1][0]):
            node = parts[i + 2][1]
            if not (node.kind == REFLECTION_KIND and node.id == -1):
                raise ExportRefused(
                    f"node {node.id} ({node.kind}): its text is Marco-o1's reflection phrase ({REFLECTION!r}), "
                    "which would read back as a refuted branch, not a step"
                )
            i += 3
            continue
        i += 1


class MarcoParseError(DataError):
    """A record is not a readable Marco-o1 record; `offset` is where it goes wrong in the response."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


def parse_marco(record: Any) -> Tree:
    """One Marco-o1 record -> Tree, the inverse of to_marco. Raises MarcoParseError.

    The instruction is the problem. The thought splits at the blank lines to_marco joined
    node texts with, each part a step under the one before. A journey's refuted branch
    (a step, its critic, then the REFLECTION line) comes back as that step rated negative
    with its critic child, and the text after the line continues from the step before it;
    the line itself is not a node (journey_path writes it again). The last part is the
    terminal conclusion when it states the output (to_marco's own record); otherwise the
    output is a conclusion of its own under it. A Marco-o1 record is a demonstration kept
    for training (to_marco writes only correct paths), so that conclusion is correct;
    no gold answer is known, so `answer` stays None and the id is tree_id(problem, None).
    """
    errors = [f for f in check_marco_record(record) if f.severity == "error"]
    if errors:
        raise MarcoParseError(errors[0].message, errors[0].offset)
    instruction, response = record["instruction"], record["response"]
    close = response.index(THOUGHT_CLOSE)
    thought = response[len(THOUGHT_OPEN) + 1 : close - 1]
    output = response[close + len(THOUGHT_CLOSE) + len(OUTPUT_OPEN) + 2 : -len(OUTPUT_CLOSE) - 1]
    parts = _NODE_BREAK.split(thought)
    tree = Tree.new(instruction, created_at="")
    parent, i = 0, 0
    while i < len(parts):
        # A refuted branch needs a step and a critic before the line and text after it.
        if i + 3 < len(parts) and parts[i + 2] == REFLECTION and REFLECTION not in (parts[i], parts[i + 1]):
            wrong = tree.add(parent, "step", parts[i], rating="negative")
            tree.add(wrong.id, "critic", parts[i + 1])
            i += 3
            continue
        parent = tree.add(parent, "step", parts[i]).id
        i += 1
    last = tree.nodes[-1]
    if (extract_answer(last.text) or last.text.strip()) == output:
        last.kind = "conclusion"
    else:
        last = tree.add(last.id, "conclusion", output)
    last.terminal, last.correct = True, True
    tree.stats.correct_leaves = 1
    tree.id = tree_id(tree.problem, tree.answer)
    return tree


def dumps_marco(records: list[dict[str, Any]]) -> str:
    """The file text, exactly as Marco-o1 wrote CoT_demo.json."""
    return json.dumps(records, ensure_ascii=False, indent=4) + "\n"




def loads_marco(text: str, path: object = None) -> list[Any]:
    """Parse a Marco-o1 file. Raises DataError naming the file when it is not a JSON array.

    Records are returned as they are; check_marco_record says what is wrong with each.
    """
    return parse_json_array(text, path, expected="{instruction, response}")


def check_marco_record(obj: Any) -> list[Finding]:
    """Every problem in one record: errors for a broken shape, warnings for suspect text."""
    if not isinstance(obj, dict):
        kind = JSON_TYPES.get(type(obj), type(obj).__name__)
        return [Finding("error", f"not an object: {kind}, expected {{instruction, response}}")]
    findings: list[Finding] = []
    for key in KEYS:
        if key not in obj:
            findings.append(Finding("error", f"missing '{key}'"))
        elif not isinstance(obj[key], str):
            findings.append(Finding("error", f"'{key}' is {JSON_TYPES.get(type(obj[key]), 'not a string')}, expected a string"))
    extra = sorted(str(k) for k in obj if k not in KEYS)
    if extra:
        findings.append(
            Finding("warning", f"extra key(s) {', '.join(extra)}: Marco-o1 records hold only instruction and response")
        )
        # An extra key is written back as it came (export, dedupe, push): it too must have a UTF-8 form.
        rest = json.dumps({str(k): v for k, v in obj.items() if k not in KEYS}, ensure_ascii=False, allow_nan=True)
        if lone_surrogate(rest) >= 0:
            findings.append(Finding("error", f"an extra key {SURROGATE_ERROR}"))
    instruction, response = obj.get("instruction"), obj.get("response")
    if isinstance(instruction, str) and not instruction.strip():
        findings.append(Finding("error", "empty instruction"))
    if isinstance(response, str):
        findings.extend(_check_response(response))
    for key in KEYS:
        value = obj.get(key)
        if isinstance(value, str) and (at := lone_surrogate(value)) >= 0:
            findings.append(Finding("error", f"{key} {SURROGATE_ERROR}", at if key == "response" else None))
        if isinstance(value, str) and "\ufffd" in value:
            offset = value.index("\ufffd") if key == "response" else None
            findings.append(Finding("warning", f"{key} {REPLACEMENT_WARNING}", offset))
    return findings


def _check_response(response: str) -> list[Finding]:
    """The response must be exactly <Thought>\\n{thought}\\n</Thought>\\n<Output>\\n{answer}\\n</Output>."""
    for tag in RESPONSE_TAGS:
        if tag not in response:
            if tag == OUTPUT_CLOSE:
                return [Finding("error", f"truncated: no {OUTPUT_CLOSE}")]
            return [Finding("error", f"no {tag}: expected {_SHAPE}")]
    for tag in RESPONSE_TAGS:
        count = response.count(tag)
        if count > 1:
            at = response.index(tag, response.index(tag) + 1)
            return [Finding("error", f"{tag} appears {count} times; expected once", at)]
    if not response.startswith(THOUGHT_OPEN + "\n"):
        return [Finding("error", f"the response must start with {THOUGHT_OPEN} and a newline", 0)]
    close = response.index(THOUGHT_CLOSE)
    middle = f"\n{THOUGHT_CLOSE}\n{OUTPUT_OPEN}\n"
    if not response.startswith(middle, close - 1):
        return [Finding("error", f"expected \\n{THOUGHT_CLOSE}\\n{OUTPUT_OPEN}\\n between the thought and the output", close)]
    end = response.index(OUTPUT_CLOSE)
    if not response.endswith("\n" + OUTPUT_CLOSE):
        at = end if response[end - 1 : end] != "\n" else end + len(OUTPUT_CLOSE)
        return [Finding("error", f"expected the response to end with \\n{OUTPUT_CLOSE}", at)]
    findings = []
    if not response[len(THOUGHT_OPEN) + 1 : close - 1].strip():
        findings.append(Finding("error", "empty thought", len(THOUGHT_OPEN) + 1))
    output_at = close - 1 + len(middle)
    if not response[output_at : end - 1].strip():
        findings.append(Finding("error", "empty output", output_at))
    return findings


@dataclass(frozen=True)
class MarcoFormat:
    """Marco-o1 CoT_demo records, written as one JSON array per shard."""

    name: ClassVar[str] = "marco"
    file_kind: ClassVar[str] = "json"
    columns: ClassVar[tuple[str, ...]] = KEYS
    # Reading rows back into trees (cotgen.io.trees, through the registry): record -> Tree.
    parse_tree: ClassVar = staticmethod(parse_marco)
    parse_error: ClassVar[type[DataError]] = MarcoParseError

    journey: bool = False  # walk through refuted branches and the reflection phrase (long CoT)
    max_journey_branches: int = 1  # refuted branches told per journey; Marco-o1 tells one

    def __post_init__(self) -> None:
        if isinstance(self.max_journey_branches, bool) or not isinstance(self.max_journey_branches, int):
            raise ValueError(f"max_journey_branches must be an integer, not {self.max_journey_branches!r}")
        if self.max_journey_branches < 1:
            raise ValueError(f"max_journey_branches must be >= 1, not {self.max_journey_branches}")

    def export(self, tree: Tree) -> Iterator[dict[str, Any]]:
        from cotgen.formats.provenance import Row

        yield Row(*marco_record(tree, journey=self.journey, max_journey_branches=self.max_journey_branches))

    def check(self, row: dict[str, Any]) -> list[Finding]:
        return check_marco_record(row)
