"""Marco-o1's CoT_demo format: Tree -> {instruction, response}, the JSON array file, record checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from cotgen.answers import extract_answer
from cotgen.formats.base import REPLACEMENT_WARNING, ExportRefused, Finding
from cotgen.formats.paths import best_correct_path, journey_path, reasoning_nodes
from cotgen.io.readers import JSON_TYPES, parse_json_array
from cotgen.tree import Node, Tree

THOUGHT_OPEN, THOUGHT_CLOSE = "<Thought>", "</Thought>"
OUTPUT_OPEN, OUTPUT_CLOSE = "<Output>", "</Output>"
RESPONSE_TAGS = (THOUGHT_OPEN, THOUGHT_CLOSE, OUTPUT_OPEN, OUTPUT_CLOSE)
# Node texts are stripped and joined by a blank line, the paragraph break CoT_demo uses.
JOINER = "\n\n"
KEYS = ("instruction", "response")
_SHAPE = "<Thought>\\n...\\n</Thought>\\n<Output>\\n...\\n</Output>"


def to_marco(tree: Tree, *, journey: bool = False, max_journey_branches: int = 1) -> dict[str, str]:
    """One Marco-o1 record from the best correct path (or its journey).

    The thought is the path's node texts after the root, each stripped, joined by JOINER
    (critics left out and refined steps replaced, unless `journey`); the output is the final
    answer of the last node (its \\boxed{} / #### / "the answer is"), else its whole text.
    Raises ExportRefused when there is no correct path or the record would not check clean.
    """
    if journey:
        path = journey_path(tree, max_journey_branches)
        body = path[1:] if path else []
    else:
        path = best_correct_path(tree)
        body = reasoning_nodes(path) if path else []
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
    return {
        "instruction": tree.problem,
        "response": f"{THOUGHT_OPEN}\n{reasoning}\n{THOUGHT_CLOSE}\n{OUTPUT_OPEN}\n{answer}\n{OUTPUT_CLOSE}",
    }


def _refuse_tags(body: list[Node], answer: str) -> None:
    """A response tag inside a text would make the record ambiguous to every reader."""
    for tag in RESPONSE_TAGS:
        for node in body:
            if tag in node.text:
                raise ExportRefused(f"node {node.id} ({node.kind}): its text contains {tag}")
        if tag in answer:
            raise ExportRefused(f"the final answer contains {tag}")


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
    instruction, response = obj.get("instruction"), obj.get("response")
    if isinstance(instruction, str) and not instruction.strip():
        findings.append(Finding("error", "empty instruction"))
    if isinstance(response, str):
        findings.extend(_check_response(response))
    for key in KEYS:
        value = obj.get(key)
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

    journey: bool = False  # walk through refuted branches and the reflection phrase (long CoT)
    max_journey_branches: int = 1  # refuted branches told per journey; Marco-o1 tells one

    def __post_init__(self) -> None:
        if isinstance(self.max_journey_branches, bool) or not isinstance(self.max_journey_branches, int):
            raise ValueError(f"max_journey_branches must be an integer, not {self.max_journey_branches!r}")
        if self.max_journey_branches < 1:
            raise ValueError(f"max_journey_branches must be >= 1, not {self.max_journey_branches}")

    def export(self, tree: Tree) -> Iterator[dict[str, Any]]:
        yield to_marco(tree, journey=self.journey, max_journey_branches=self.max_journey_branches)

    def check(self, row: dict[str, Any]) -> list[Finding]:
        return check_marco_record(row)
