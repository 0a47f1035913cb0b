"""The prm format: TRL's step-wise supervision rows (prompt, completions, labels) per path."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from cotgen.formats.base import (
    ExportRefused,
    Finding,
    control_token_findings,
    refuse_control_tokens,
    stated_problem,
)
from cotgen.formats.provenance import Row
from cotgen.search.ratings import own_counts
from cotgen.tree import Node, Tree, solution_steps

PATH_MODES = ("terminal", "all")
LABEL_MODES = ("ratings", "share")


def label_values(tree: Tree) -> dict[int, float]:
    """Node id -> the value prm labels and dpo pairs read: the share of correct graded
    terminal leaves the node's own reasoning reaches (search.ratings.own_counts, the same
    counts the ratings come from), or, when none is graded, the search's backed-up
    `value`, which folds in every estimate below it.
    """
    counts = own_counts(tree)
    return {
        node.id: counts[node.id][0] / counts[node.id][1] if counts[node.id][1] else node.value
        for node in tree.nodes
    }


def path_leaves(tree: Tree) -> list[Node]:
    """The leaves that end a root-to-leaf path (prm, processbench). A critic never refined
    ends no path: it withdraws its step and states none, so its path has no last step of
    its own to label."""
    kids = tree.children()
    return [n for n in tree.preorder() if n.id != 0 and not kids[n.id] and n.kind != "critic"]


def leaf_step_texts(
    tree: Tree, leaves: list[Node], problem: str, problem_column: str, steps_column: str
) -> Iterator[tuple[Node, list[Node], list[str]]]:
    """Per leaf, the solution steps of its root-to-leaf path and their stripped texts, for
    the formats whose row is one path (prm, processbench). A path with an empty step is
    passed over: the caller says why when no path is left. A chat-template control token
    in the problem or in a step refuses the whole tree, naming the row's column
    (`problem_column`, `steps_column[i]`)."""
    index = tree.by_id()
    for leaf in leaves:
        steps = solution_steps(path_from_root(index, leaf))
        texts = [n.text.strip() for n in steps]
        if not texts or not all(texts):
            continue
        refuse_control_tokens({problem_column: problem, **{f"{steps_column}[{i}]": t for i, t in enumerate(texts)}})
        yield leaf, steps, texts


def path_from_root(index: dict[int, Node], node: Node) -> list[Node]:
    """Root-to-node path through a prebuilt `tree.by_id()`; Tree.path_to rebuilds it per call."""
    path = [node]
    while path[-1].parent in index and len(path) <= len(index):  # the bound stops a cycle
        path.append(index[path[-1].parent])
    return path[::-1]


@dataclass(frozen=True)
class PRMFormat:
    """One row per root-to-leaf path: the path's steps, each labelled good or bad.

    `labels="ratings"` (default): a step rated positive or negative keeps its rating (the
    search's hard rule, checked against exact step truth in bench/search_quality.py), and an
    unknown step falls back to its share; `labels="share"`: every step is its share of
    correct rollouts (`label_values`, ground truth where the subtree has graded leaves)
    >= `label_threshold`.
    """

    name: ClassVar[str] = "prm"
    file_kind: ClassVar[str] = "parquet"
    columns: ClassVar[tuple[str, ...]] = ("prompt", "completions", "labels")

    paths: str = "terminal"  # "terminal": only paths ending at a terminal (answered) leaf; "all": every leaf
    label_threshold: float = 0.5  # a step is good when its Monte Carlo value >= this (the soft share's cut)
    labels: str = "ratings"  # ratings: the step's rating where it has one; share: the soft share for every step

    def __post_init__(self) -> None:
        if self.paths not in PATH_MODES:
            raise ValueError(f"paths must be one of {', '.join(PATH_MODES)}, not {self.paths!r}")
        if self.labels not in LABEL_MODES:
            raise ValueError(f"labels must be one of {', '.join(LABEL_MODES)}, not {self.labels!r}")
        if isinstance(self.label_threshold, bool) or not isinstance(self.label_threshold, (int, float)):
            raise ValueError(f"label_threshold must be a number, not {self.label_threshold!r}")
        if not 0.0 <= self.label_threshold <= 1.0:
            raise ValueError(f"label_threshold must be within [0, 1], not {self.label_threshold}")

    def export(self, tree: Tree) -> Iterator[dict[str, Any]]:
        prompt = stated_problem(tree)
        values = label_values(tree)
        leaves = path_leaves(tree)
        if self.paths == "terminal":
            leaves = [n for n in leaves if n.terminal]
        if not leaves:
            raise ExportRefused("no terminal leaf" if self.paths == "terminal" else "no leaf")
        rows = 0
        # A path with an empty step cannot be supervised; counted below if nothing is left.
        for _, steps, completions in leaf_step_texts(tree, leaves, prompt, "prompt", "completions"):
            rows += 1
            yield Row({
                "prompt": prompt,
                "completions": completions,
                "labels": [self._label(n, values[n.id]) for n in steps],
            }, steps)
        if rows == 0:
            raise ExportRefused("every path has an empty step")

    def _label(self, node: Node, share: float) -> bool:
        if self.labels == "ratings" and node.rating in ("positive", "negative"):
            return node.rating == "positive"
        return share >= self.label_threshold

    def check(self, row: dict[str, Any]) -> list[Finding]:
        out = text_findings(row, "prompt")
        completions, labels = row.get("completions"), row.get("labels")
        out.extend(step_list_findings(row, "completions"))
        if not isinstance(completions, (list, tuple)):
            completions = None
        if not isinstance(labels, (list, tuple)):
            out.append(Finding("error", f"labels must be a list of booleans, not {_kind(labels)}"))
        else:
            for i, label in enumerate(labels):
                if not isinstance(label, bool):
                    out.append(Finding("error", f"labels[{i}] must be true or false, not {label!r}"))
            if completions is not None and len(labels) != len(completions):
                out.append(Finding(
                    "error",
                    f"{len(labels)} labels for {len(completions)} completions: one label per step",
                ))
        return out

    @staticmethod
    def arrow_schema():  # -> pyarrow.Schema
        """Column types of a prm shard: TRL's stepwise-supervision contract."""
        import pyarrow as pa

        return pa.schema([
            ("prompt", pa.string()),
            ("completions", pa.list_(pa.string())),
            ("labels", pa.list_(pa.bool_())),
        ])


def _kind(value: object) -> str:
    return "missing" if value is None else type(value).__name__


def step_list_findings(row: dict[str, Any], column: str) -> list[Finding]:
    """Findings for a column that must hold a non-empty list of step texts, each a non-blank
    string with no chat-template control token (prm's completions, processbench's steps)."""
    steps = row.get(column)
    if not isinstance(steps, (list, tuple)):
        return [Finding("error", f"{column} must be a list of strings, not {_kind(steps)}")]
    if not steps:
        return [Finding("error", f"{column} is empty: a path needs at least one step")]
    return [finding for i, step in enumerate(steps) for finding in _text_findings(step, f"{column}[{i}]")]


def text_findings(row: dict[str, Any], column: str) -> list[Finding]:
    """Findings for a column that must hold a non-blank string with no chat-template
    control token (the prm and dpo checks)."""
    return _text_findings(row.get(column), column)


def _text_findings(value: object, name: str) -> list[Finding]:
    """Findings for a value that must be a non-blank string with no chat-template control
    token: a column, or one step of a list (`name` is completions[i])."""
    if not isinstance(value, str):
        return [Finding("error", f"{name} must be a string, not {_kind(value)}")]
    if not value.strip():
        return [Finding("error", f"{name} is empty")]
    return control_token_findings(value, name)
