"""Hub-standard provenance of exported rows: where each problem came from, which model wrote
the row, what verified it, whether a token limit cut it, and how many tokens it took.

Formats that allow extra columns (sft, prm, dpo, processbench) carry it in each row. The
exact formats (OpenLongCoT text, Marco-o1's CoT_demo JSON) must stay byte-exact, so theirs
goes to a sidecar beside the export, one line per row; every export also writes a summary
sidecar that `push` puts on the dataset card.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from cotgen.formats.base import Finding
from cotgen.models import public_model_id
from cotgen.tree import Node, Tree

# The columns (OpenR1-Math-220k and ProcessBench name the first ones so).
COLUMNS = ("source", "generator", "verified_by", "truncated", "tokens")
# Formats whose rows are byte-exact to a published layout: provenance never enters the row.
EXACT_FORMATS = ("openlongcot", "marco")
# The sidecars start with "_": pyarrow's dataset discovery (pq.read_table on the folder) and
# other readers of a folder of shards skip such names, so they never read as data files.
SIDECAR_PREFIX = "_"
SUMMARY_SUFFIX = ".provenance.json"  # _<split>.provenance.json: the summary, every format
ROWS_SUFFIX = ".provenance.jsonl"  # _<split>.provenance.jsonl: one line per row, exact formats


def summary_name(split: str) -> str:
    return f"{SIDECAR_PREFIX}{split}{SUMMARY_SUFFIX}"


def rows_name(split: str) -> str:
    return f"{SIDECAR_PREFIX}{split}{ROWS_SUFFIX}"


class Row(dict):
    """An exported row and the tree nodes it was written from (for `truncated` and
    `tokens`); it compares and serializes as the plain dict it is."""

    __slots__ = ("nodes",)

    def __init__(self, fields: dict[str, Any], nodes: Iterable[Node]) -> None:
        super().__init__(fields)
        self.nodes = list(nodes)


def row_nodes(tree: Tree, row: dict[str, Any]) -> list[Node]:
    """The nodes a row was written from: those its format named, else the whole tree."""
    nodes = getattr(row, "nodes", None)
    return nodes if nodes is not None else [n for n in tree.nodes if n.id != 0]


def row_provenance(tree: Tree, row: dict[str, Any], verified_by: str) -> dict[str, Any]:
    """The provenance columns of one row of `tree`. `verified_by` names the grader of the
    run the tree came from; a tree that holds no verdict was verified by nothing ("")."""
    nodes = row_nodes(tree, row)
    # Verdicts math-verify gave against a gold answer; a tree read back without one (a Marco-o1
    # record, an OpenLongCoT row without `answer`) holds verdicts nothing verified.
    graded = tree.answer is not None and any(n.correct is not None for n in tree.nodes)
    return {
        "source": tree.source or "",
        "generator": public_model_id(tree.model or ""),
        "verified_by": verified_by if graded else "",
        "truncated": any(n.truncated for n in nodes),
        "tokens": sum(n.tokens for n in nodes),
    }


class Summary:
    """What the provenance columns of one split add up to: the summary sidecar's content."""

    def __init__(self, format: str, split: str) -> None:
        self.format, self.split = format, split
        self.rows = self.truncated = self.tokens = 0
        self.generators: Counter = Counter()
        self.sources: Counter = Counter()
        self.verified_by: Counter = Counter()

    def add(self, prov: dict[str, Any]) -> None:
        self.rows += 1
        self.truncated += bool(prov["truncated"])
        self.tokens += int(prov["tokens"])
        self.generators[prov["generator"]] += 1
        self.sources[source_dataset(prov["source"])] += 1
        self.verified_by[prov["verified_by"]] += 1

    def as_json(self) -> dict[str, Any]:
        where = ("each row's columns " + ", ".join(COLUMNS) if self.format not in EXACT_FORMATS
                 else f"{rows_name(self.split)}, one line per row in shard order")
        return {
            "format": self.format,
            "split": self.split,
            "rows": self.rows,
            "generators": dict(self.generators.most_common()),
            "sources": dict(self.sources.most_common()),
            "verified_by": dict(self.verified_by.most_common()),
            "truncated_rows": self.truncated,
            "tokens": self.tokens,
            "per_row": where,
        }


def extra_columns(format: str, own: tuple[str, ...], have: tuple[str, ...]) -> list[str]:
    """The provenance columns a file of `format` holds beyond the format's `own` ones."""
    if format in EXACT_FORMATS:
        return []
    return [c for c in COLUMNS if c in have and c not in own]


def with_checks(check: Callable[[dict[str, Any]], list[Finding]]) -> Callable[[dict[str, Any]], list[Finding]]:
    """A format's row check followed by the checks of the provenance columns."""
    def checked(row: dict[str, Any]) -> list[Finding]:
        return [*check(row), *findings(row)]

    return checked


def findings(row: dict[str, Any]) -> list[Finding]:
    """What is wrong with the provenance columns of one row (those it has; null is allowed)."""
    out: list[Finding] = []
    for name in ("source", "generator", "verified_by"):
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            out.append(Finding("error", f"{name} must be a string, not {type(value).__name__}"))
    generator = row.get("generator")
    if isinstance(generator, str) and public_model_id(generator) != generator.strip():
        out.append(Finding(
            "error",
            f"generator {generator!r} is a machine-local path: publish the model id "
            f"(e.g. {public_model_id(generator)!r}) instead",
        ))
    truncated, tokens = row.get("truncated"), row.get("tokens")
    if truncated is not None and not isinstance(truncated, bool):
        out.append(Finding("error", f"truncated must be true or false, not {truncated!r}"))
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0):
        out.append(Finding("error", f"tokens must be a count (an integer >= 0), not {tokens!r}"))
    return out


def arrow_fields() -> list:
    """The Arrow fields of the provenance columns, as exports write them."""
    import pyarrow as pa

    return [pa.field("source", pa.string()), pa.field("generator", pa.string()),
            pa.field("verified_by", pa.string()), pa.field("truncated", pa.bool_()),
            pa.field("tokens", pa.int64())]


def source_dataset(source: str) -> str:
    """A problem's source without its row: 'openai/gsm8k/train#12' -> 'openai/gsm8k/train'."""
    return source.rsplit("#", 1)[0] if source else ""
