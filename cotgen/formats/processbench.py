"""The processbench format: Qwen's ProcessBench rows (one answered path, its first wrong step)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from cotgen.formats.base import ExportRefused, Finding, stated_problem
from cotgen.formats.prm import leaf_step_texts, path_leaves, step_list_findings, text_findings
from cotgen.formats.provenance import Row
from cotgen.models import public_model_id
from cotgen.tree import Node, Tree


@dataclass(frozen=True)
class ProcessBenchFormat:
    """One row per answered root-to-leaf path whose final answer was graded, with the
    columns of Qwen/ProcessBench: `steps` are the path's step texts (a critic withdraws the
    step it criticized and its refine takes the place, as in prm), `label` the index of the
    first step the search rated negative (-1 when none is) and `final_answer_correct` the
    verifier's verdict on the path's answer.

    A graded final answer is rated by its verdict (search.ratings), so on a path whose
    answer is wrong the label is at most its last step; a tree rated by another tool that
    left such an answer unrated gets the same reading here rather than a -1 that says the
    whole path is right.
    """

    name: ClassVar[str] = "processbench"
    file_kind: ClassVar[str] = "parquet"
    columns: ClassVar[tuple[str, ...]] = ("id", "generator", "problem", "steps", "label", "final_answer_correct")

    def export(self, tree: Tree) -> Iterator[dict[str, Any]]:
        problem = stated_problem(tree)
        answered = [n for n in path_leaves(tree) if n.terminal]
        if not answered:
            raise ExportRefused("no answered root-to-leaf path (no terminal leaf)")
        graded = [n for n in answered if n.correct is not None]
        if not graded:
            why = "the tree has no reference answer" if tree.answer is None else "no verdict was recorded"
            raise ExportRefused(f"no graded answered path: final_answer_correct needs a verdict ({why})")
        generator = public_model_id(tree.model)
        rows = 0
        # A path with an empty step cannot be judged; counted below if nothing is left.
        for leaf, nodes, steps in leaf_step_texts(tree, graded, problem, "problem", "steps"):
            rows += 1
            yield Row({
                "id": f"{tree.id}-{leaf.id}",
                "generator": generator,
                "problem": problem,
                "steps": steps,
                "label": first_negative(nodes, leaf),
                "final_answer_correct": bool(leaf.correct),
            }, nodes)
        if rows == 0:
            raise ExportRefused("every graded answered path has an empty step")

    def check(self, row: dict[str, Any]) -> list[Finding]:
        out: list[Finding] = []
        # A non-string id and a repeated one are validate's (it checks every format's id).
        rid = row.get("id")
        if rid is None:
            out.append(Finding("error", "id is missing: every row needs a unique id"))
        elif isinstance(rid, str) and not rid.strip():
            out.append(Finding("error", "id is empty: every row needs a unique id"))
        out.extend(_generator_findings(row.get("generator")))
        out.extend(text_findings(row, "problem"))
        steps = row.get("steps")
        out.extend(step_list_findings(row, "steps"))
        if not isinstance(steps, (list, tuple)):
            steps = None
        label, correct = row.get("label"), row.get("final_answer_correct")
        if isinstance(label, bool) or not isinstance(label, int):
            out.append(Finding("error", f"label must be an integer (a step index, or -1), not {_kind(label)}"))
            label = None
        elif steps is not None and not steps and label != -1:
            out.append(Finding("error", f"label is {label} but there are no steps: only -1 fits"))
        elif steps is not None and not -1 <= label < len(steps):
            out.append(Finding(
                "error",
                f"label {label} is out of range for {len(steps)} steps: "
                f"the index of the first wrong step (0 to {len(steps) - 1}), or -1 when none is wrong",
            ))
        if not isinstance(correct, bool):
            out.append(Finding("error", f"final_answer_correct must be true or false, not {_kind(correct)}"))
        elif correct is False and label == -1:
            out.append(Finding(
                "warning",
                "label is -1 (no wrong step) but final_answer_correct is false: a wrong answer has a wrong step",
            ))
        return out

    @staticmethod
    def arrow_schema():  # -> pyarrow.Schema
        """Column types of a processbench shard, those of the Qwen/ProcessBench dataset."""
        import pyarrow as pa

        return pa.schema([
            ("id", pa.string()),
            ("generator", pa.string()),
            ("problem", pa.string()),
            ("steps", pa.list_(pa.string())),
            ("label", pa.int64()),
            ("final_answer_correct", pa.bool_()),
        ])


def first_negative(steps: list[Node], leaf: Node) -> int:
    """Index of the first step rated negative, -1 if none; `leaf`, the graded final answer,
    counts as rated by its verdict where it carries no rating (see ProcessBenchFormat)."""
    for i, node in enumerate(steps):
        if node.rating == "negative" or (node is leaf and node.rating != "positive" and node.correct is False):
            return i
    return -1


def _generator_findings(value: object) -> list[Finding]:
    if not isinstance(value, str):
        return [Finding("error", f"generator must be a string (the model id), not {_kind(value)}")]
    if not value.strip():
        return [Finding("warning", "generator is empty: the row does not say which model wrote its steps")]
    public = public_model_id(value)
    if public != value.strip():
        return [Finding(
            "error",
            f"generator {value!r} is a machine-local path: publish the model id (e.g. {public!r}) instead",
        )]
    return []


def _kind(value: object) -> str:
    return "missing" if value is None else type(value).__name__
