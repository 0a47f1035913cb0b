"""Trees from any input: run folders, tree shards, or OpenLongCoT and Marco-o1 files parsed back to trees."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from cotgen.errors import DataError, UsageError, located
from cotgen.formats import format_class
from cotgen.io.inputs import expand_inputs
from cotgen.io.layout import shard_paths
from cotgen.io.readers import TREES, BadRow, Reader, TreeShardReader, open_rows
from cotgen.tree import Tree, may_be_terminal, tree_id

# on_skip(reason, where): called for an input row that yields no tree; None = raise DataError.
SkipHandler = Callable[[str, str], None]


def tree_inputs(paths: Iterable[Path]) -> list[Reader]:
    """A reader for every input file that carries whole trees, checked before anything is read."""
    paths = list(paths)
    if not paths:
        raise UsageError(f"no input: give {WHAT_READS}")
    out: list[Reader] = []
    files = expand_inputs(paths)
    if not files:
        raise UsageError(f"{', '.join(map(str, paths))}: no tree shards yet: nothing to read")
    for path in files:
        reader = open_rows(path)
        if reader.format != TREES and reader.format not in ROW_PARSERS:
            raise UsageError(f"{path}: holds {reader.format} rows, which do not carry whole trees; give {WHAT_READS}")
        out.append(reader)
    return out


def iter_located_trees(readers: Iterable[Reader], on_skip: SkipHandler | None = None) -> Iterator[tuple[Tree, str]]:
    """(tree, where) for every tree `tree_inputs` opened, in order; `where` names file, row and id."""
    for reader in readers:
        rows = reader.trees() if isinstance(reader, TreeShardReader) else ROW_PARSERS[reader.format](reader)
        for index, tree in rows:
            if isinstance(tree, BadRow):
                where = located(reader.path, index, "", tree.offset).removesuffix(": ")
                if on_skip is None:
                    raise DataError(f"{where}: {tree.message}")
                on_skip(tree.message, where)
                continue
            yield tree, f"{reader.path}: row {index}: tree {tree.id}"


def iter_input_trees(paths: Iterable[Path]) -> Iterator[Tree]:
    """Every tree of the inputs; a row that yields no tree is a DataError naming it."""
    for tree, _ in iter_located_trees(tree_inputs(paths)):
        yield tree


def finished_tree_ids(run_dir: Path, *, failed: bool = True) -> set[str]:
    """Ids of every tree already in a complete shard of the run (reads only the id and error
    columns). `failed=False` leaves out trees recorded only with an error: a rerun retries them."""
    ids: set[str] = set()
    columns = ["id"] if failed else ["id", "error"]
    for path in shard_paths(run_dir):
        for _, row in TreeShardReader(path).rows(columns=columns):
            if failed or row.get("error") is None:
                ids.add(row["id"])
    return ids


def _openlongcot_trees(reader: Reader) -> Iterator[tuple[int, Tree | BadRow]]:
    fmt = format_class("openlongcot")
    columns = [c for c in ("text", "id", "answer") if c in reader.columns]
    for batch in reader.batches(columns):
        for index, row in zip(batch.indices, batch.rows, strict=True):
            if isinstance(row, BadRow):
                yield index, BadRow(f"unreadable input row: {row.message}")
                continue
            text = row.get("text")
            if not isinstance(text, str):
                yield index, BadRow("input row has no text")
                continue
            try:
                tree = fmt.parse_tree(text)
            except fmt.parse_error as exc:
                yield index, BadRow(f"not valid OpenLongCoT: {exc.reason}", exc.offset)
                continue
            # Rows cotgen exported carry the ground truth and the tree id beside the text.
            answer = row.get("answer")
            if isinstance(answer, str):
                tree.answer = answer
            tree.id = row.get("id") or tree_id(tree.problem, tree.answer)
            infer_verdicts(tree)
            yield index, tree


def _marco_trees(reader: Reader) -> Iterator[tuple[int, Tree | BadRow]]:
    fmt = format_class("marco")
    for batch in reader.batches():
        for index, row in zip(batch.indices, batch.rows, strict=True):
            if isinstance(row, BadRow):
                yield index, BadRow(f"unreadable input row: {row.message}")
                continue
            try:
                yield index, fmt.parse_tree(row)
            except fmt.parse_error as exc:
                yield index, BadRow(f"not a valid Marco-o1 record: {exc.reason}", exc.offset)


# The export formats whose rows each hold one whole tree, and how their rows become Trees.
ROW_PARSERS: dict[str, Callable[[Reader], Iterator[tuple[int, Tree | BadRow]]]] = {
    "openlongcot": _openlongcot_trees,
    "marco": _marco_trees,
}
WHAT_READS = "run folders, tree shards, OpenLongCoT or Marco-o1 files"


def infer_verdicts(tree: Tree) -> None:
    """Mark the terminal leaves of a tree parsed from OpenLongCoT, which carries no
    terminal/correct flags, so that path-based formats (marco, sft, prm, dpo) can use it.

    A leaf is terminal when it is a conclusion or states a final answer. Its verdict is the
    grade against the tree's answer when one is known, else its rating (LLaMA-O1 rates
    steps by ground truth, so a positive terminal step is a correct one).
    """
    kids = tree.children()
    for node in tree.nodes[1:]:
        if kids[node.id] or not may_be_terminal(node.kind, node.text):
            continue
        node.terminal = True
        if tree.answer is not None:
            from cotgen.verify import grade

            node.correct = grade(node.text, tree.answer).correct
        else:
            node.correct = {"positive": True, "negative": False}.get(node.rating)
    tree.stats.correct_leaves = sum(n.correct is True for n in tree.nodes)
