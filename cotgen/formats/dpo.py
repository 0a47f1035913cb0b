"""The dpo format: step-level preference pairs (prompt, chosen, rejected) from sibling nodes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any, ClassVar

from cotgen.formats.base import ExportRefused, Finding, refuse_control_tokens, stated_problem
from cotgen.formats.prm import label_values, path_from_root, text_findings
from cotgen.formats.provenance import Row
from cotgen.tree import Node, Tree, solution_steps

PAIR_MODES = ("best-worst", "all")
# Siblings compete only with siblings of the same kind: a step against a step, a
# conclusion against a conclusion, one rewrite of a criticized step against another.
PAIRED_KINDS = ("step", "conclusion", "refine")
SEPARATOR = "\n\n"  # between the problem and each step, as the policy prompts them


@dataclass(frozen=True)
class DPOFormat:
    """Pairs of sibling continuations whose values differ by more than `margin`.

    prompt = the problem and the solution steps shared by both (critics withdraw the
    step they criticize, see prm.solution_steps), each followed by a blank line, so
    prompt + chosen is the text the policy would have continued. Values are
    prm.label_values: ground truth where the subtree has graded leaves.
    """

    name: ClassVar[str] = "dpo"
    file_kind: ClassVar[str] = "parquet"
    columns: ClassVar[tuple[str, ...]] = ("prompt", "chosen", "rejected")

    # Most value estimates from a few leaves are coarse (0, 1/3, 1/2, ...): 0.3 keeps
    # pairs a whole leaf apart and drops near-ties, which are noise, not preference.
    margin: float = 0.3
    # "best-worst": one pair per group of siblings, highest vs lowest value (less
    # repetition of one prompt); "all": every pair of siblings that clears the margin.
    pairs: str = "best-worst"

    def __post_init__(self) -> None:
        if isinstance(self.margin, bool) or not isinstance(self.margin, (int, float)):
            raise ValueError(f"margin must be a number, not {self.margin!r}")
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"margin must be within [0, 1), not {self.margin}")
        if self.pairs not in PAIR_MODES:
            raise ValueError(f"pairs must be one of {', '.join(PAIR_MODES)}, not {self.pairs!r}")

    def export(self, tree: Tree) -> Iterator[dict[str, Any]]:
        problem = stated_problem(tree)
        values = label_values(tree)
        kids = tree.children()
        index = tree.by_id()
        rows = 0
        for parent in tree.preorder():
            for kind in PAIRED_KINDS:
                group = [n for n in kids[parent.id] if n.kind == kind]
                for chosen, rejected in self._pairs(group, values):
                    a, b = chosen.text.strip(), rejected.text.strip()
                    if not a or not b or a == b:
                        continue  # not a preference between two different texts
                    row = Row({"prompt": _prompt(index, problem, parent), "chosen": a, "rejected": b}, (chosen, rejected))
                    refuse_control_tokens(row)
                    rows += 1
                    yield row
        if rows == 0:
            raise ExportRefused(f"no sibling pair whose values differ by more than {self.margin}")

    def _pairs(self, group: list[Node], values: dict[int, float]) -> list[tuple[Node, Node]]:
        """(chosen, rejected) pairs from one group of siblings; ties go to the earlier node."""
        if len(group) < 2:
            return []
        if self.pairs == "best-worst":
            best = max(group, key=lambda n: values[n.id])  # max/min keep the first of equals
            worst = min(group, key=lambda n: values[n.id])
            candidates = [(best, worst)]
        else:
            candidates = [(a, b) if values[a.id] >= values[b.id] else (b, a) for a, b in combinations(group, 2)]
        return [(c, r) for c, r in candidates if values[c.id] - values[r.id] > self.margin]

    def check(self, row: dict[str, Any]) -> list[Finding]:
        out = text_findings(row, "prompt") + text_findings(row, "chosen") + text_findings(row, "rejected")
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if isinstance(chosen, str) and chosen.strip() and chosen == rejected:
            out.append(Finding("error", "chosen and rejected are the same text: no preference to learn"))
        return out

    @staticmethod
    def arrow_schema():  # -> pyarrow.Schema
        """Column types of a dpo shard: TRL's standard (not conversational) preference format."""
        import pyarrow as pa

        return pa.schema([("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())])


def _prompt(index: dict[int, Node], problem: str, parent: Node) -> str:
    steps = [n.text.strip() for n in solution_steps(path_from_root(index, parent))]
    return "".join(text + SEPARATOR for text in [problem, *steps] if text)
