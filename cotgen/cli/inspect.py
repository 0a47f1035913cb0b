"""`cotgen inspect`: draw one tree in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.tree import Tree as RichTree

from cotgen.cli.app import app, emit_json, out
from cotgen.errors import DataError, UsageError
from cotgen.tree import Node, Tree, broken_invariants

RATING_STYLE = {"positive": "green", "negative": "red", "unknown": "dim"}
KIND_STYLE = {"problem": "bold", "step": "cyan", "critic": "magenta", "refine": "yellow", "conclusion": "bold blue"}


def node_label(node: Node, width: int) -> str:
    text = " ".join(node.text.split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    verdict = ""
    if node.terminal:
        verdict = {True: " [green]✓ correct[/]", False: " [red]✗ wrong[/]"}.get(node.correct, " [dim]? ungraded[/]")
    q = f" q={node.q_estimate:.2f}" if node.q_estimate is not None else ""
    return (
        f"[dim]#{node.id}[/] [{KIND_STYLE.get(node.kind, '')}]{node.kind}[/] "
        f"[{RATING_STYLE.get(node.rating, '')}]{node.rating}[/] "
        f"v={node.value:.2f}{q} n={node.visits}{verdict}  {escape(text)}"
    )


def render(tree: Tree, width: int) -> RichTree:
    header = (
        f"[bold]tree {tree.id}[/]  answer={escape(str(tree.answer))}  model={escape(tree.model or '-')}\n"
        f"nodes={len(tree.nodes)}  simulations={tree.stats.simulations}  correct leaves={tree.stats.correct_leaves}"
    )
    if tree.error:
        header += f"\n[red]failed: {escape(tree.error)}[/]"
    top = RichTree(header)
    kids = tree.children()
    stack = [(tree.root, top)]
    while stack:
        node, parent = stack.pop()
        branch = parent.add(node_label(node, width))
        stack.extend((child, branch) for child in reversed(kids[node.id]))
    return top


def pick(trees, row: int | None, tree_id: str | None, source: str) -> Tree:
    """The tree at `row` or with `tree_id`; an invalid one is refused, as export refuses it
    (a cyclic or orphaned tree would be drawn as a silent subset of its nodes)."""
    for index, (tree, where) in enumerate(trees):
        if (tree_id is not None and tree.id == tree_id) or (tree_id is None and index == (row or 0)):
            problems = broken_invariants(tree)
            if problems:
                raise DataError(f"{where}: an invalid tree, not drawn: {'; '.join(problems[:3])}"
                                f"{' ...' if len(problems) > 3 else ''}")
            return tree
    wanted = f"id {tree_id}" if tree_id is not None else f"row {row or 0}"
    raise DataError(f"{source}: no tree with {wanted}")


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="A run folder, a tree shard, an OpenLongCoT or a Marco-o1 file.")],
    row: Annotated[int | None, typer.Option("--row", help="Row index (0-based) of the tree to draw.")] = None,
    tree_id: Annotated[str | None, typer.Option("--id", help="Id of the tree to draw.")] = None,
    width: Annotated[int, typer.Option(help="Characters of text shown per node.")] = 80,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tree record as JSON instead.")] = False,
) -> None:
    """Draw one tree: kind, rating, value, visits and a text preview of every node."""
    from cotgen.io.trees import iter_located_trees, tree_inputs

    if row is not None and tree_id is not None:
        raise UsageError("give --row or --id, not both")
    if row is not None and row < 0:
        raise UsageError("--row must be >= 0")
    tree = pick(iter_located_trees(tree_inputs([path])), row, tree_id, str(path))
    if as_json:
        emit_json(tree.to_row())
    else:
        out.print(render(tree, width))
