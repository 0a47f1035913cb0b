"""Paths through a tree that exports train on: the best correct path, the journey, the final answer.

Pure functions of a Tree. A path is a list of the tree's own Node objects, root first.
"""

from __future__ import annotations

from cotgen.tree import Node, Tree

REFLECTION = "Wait! Maybe I made some mistakes! I need to rethink from scratch."
REFLECTION_KIND = "reflection"  # kind of the stand-in node journey_path puts before a fix

# A node whose value is below this counts as refuted even when it carries no rating.
LOW_VALUE = 0.5


def best_correct_path(tree: Tree) -> list[Node] | None:
    """The root-to-leaf path to the best correct terminal node, critics left out; None if none.

    Candidates end in a node with `correct is True` (never a critic). The path is the tree's
    chain root..leaf without its critic nodes, so a step that was criticized and refined
    appears followed directly by its refine node (see `reasoning_nodes` to drop the
    rewritten step). Best = highest mean value of the nodes after the root; ties go to the
    shorter path, then to the lexicographically lower list of ids.

    Linear in the nodes (one pass of running sums, a preorder only for ties): building each
    candidate's path took correct leaves x depth, 22 s on a 16k-node tree.
    """
    sums = _path_sums(tree)
    if sums is None:
        return _best_correct_path_by_walking(tree)
    total, count = sums
    best: tuple[float, int] | None = None
    tied: list[int] = []
    for leaf in tree.nodes:
        if leaf.correct is not True or leaf.kind == "critic":
            continue
        body = count[leaf.id] - 1  # the nodes after the root
        key = (-(total[leaf.id] / body if body else 0.0), count[leaf.id])
        if best is None or key < best:
            best, tied = key, [leaf.id]
        elif key == best:
            tied.append(leaf.id)
    if not tied:
        return None
    winner = tied[0] if len(tied) == 1 else min(tied, key=_lexicographic_rank(tree).__getitem__)
    return [n for n in tree.path_to(winner) if n.kind != "critic"]


def _path_sums(tree: Tree) -> tuple[dict[int, float], dict[int, int]] | None:
    """Per node id: the sum of the values of the non-critic nodes after the root on its path
    (added root first, as _mean_value adds them) and the number of non-critic nodes on the
    path. None when the tree is not ordered parent-before-child from one root with unique
    ids (an invalid tree): the caller then walks each path."""
    total: dict[int, float] = {}
    count: dict[int, int] = {}
    for pos, n in enumerate(tree.nodes):
        if n.id in total:
            return None
        if pos == 0:
            if n.parent != -1 or n.kind == "critic":
                return None
            total[n.id], count[n.id] = 0, 1
        elif n.parent not in total or n.parent == -1:
            return None
        elif n.kind == "critic":
            total[n.id], count[n.id] = total[n.parent], count[n.parent]
        else:
            total[n.id], count[n.id] = total[n.parent] + n.value, count[n.parent] + 1
    return total, count


def _lexicographic_rank(tree: Tree) -> dict[int, int]:
    """Node id -> its place in the order of the critic-free paths' id lists: a preorder of
    the tree without its critics, children in ascending id order. For two paths of the same
    length, the lower rank has the lexicographically lower id list. Needs _path_sums's order."""
    kept: dict[int, int] = {}  # node id -> itself, or for a critic its nearest kept ancestor
    kids: dict[int, list[int]] = {}
    for pos, n in enumerate(tree.nodes):
        if pos == 0:
            kept[n.id] = n.id
        elif n.kind == "critic":
            kept[n.id] = kept[n.parent]
            continue
        else:
            kept[n.id] = n.id
            kids.setdefault(kept[n.parent], []).append(n.id)
    rank: dict[int, int] = {}
    stack = [tree.nodes[0].id]
    while stack:
        node = stack.pop()
        rank[node] = len(rank)
        stack.extend(sorted(kids.get(node, ()), reverse=True))
    return rank


def _best_correct_path_by_walking(tree: Tree) -> list[Node] | None:
    """best_correct_path for a tree out of order (invalid): each candidate's path walked."""
    best: tuple[float, int, list[int]] | None = None
    best_path: list[Node] | None = None
    index = tree.by_id()
    for leaf in tree.nodes:
        if leaf.correct is not True or leaf.kind == "critic":
            continue
        path = [n for n in tree.path_to(leaf.id, index) if n.kind != "critic"]
        if not path or path[0].parent != -1:
            continue  # not connected to the root: an invalid tree, not a path
        key = (-_mean_value(path), len(path), [n.id for n in path])
        if best is None or key < best:
            best, best_path = key, path
    return best_path


def reasoning_nodes(path: list[Node]) -> list[Node]:
    """The path after the root, with every step that a refine node rewrote left out.

    In a path from best_correct_path a refine node directly follows the step its critic
    criticized; the refine replaces that step in a clean chain of reasoning.
    """
    body = path[1:] if path and path[0].parent == -1 else list(path)
    return [n for i, n in enumerate(body) if not (i + 1 < len(body) and body[i + 1].kind == "refine")]


def journey_path(tree: Tree, max_branches: int = 1) -> list[Node] | None:
    """The best correct path told as a journey through mistakes; None when there is no correct path.

    Returns the root followed by, in order:
    - the best correct path, where a step that was criticized and refined on the path is
      followed by its critic, a reflection node, then the refine node; and
    - before the point where they branch off the best path, up to `max_branches` refuted
      branches in total (those on the path count first): the wrong step(s) from the
      branch point down to a step/refine node rated negative (or valued below LOW_VALUE)
      that has a critic child, then that critic, then a reflection node; the best path
      then continues (the refined continuation).

    A reflection node is not part of the tree: `Node(id=-1, parent=<critic id>,
    kind="reflection", text=REFLECTION)`. So `[n.text for n in journey[1:]]` is the
    journey's text, in order.
    """
    if max_branches < 0:
        raise ValueError(f"max_branches must be >= 0, not {max_branches}")
    best = best_correct_path(tree)
    if best is None:
        return None
    by_id = tree.by_id()
    on_path = {n.id for n in best}
    budget = max_branches
    # Critics on the best path itself (step -> critic -> refine) come first.
    fixes: dict[int, Node] = {}  # refine id -> its critic, for fixes made on the path
    for node in best:
        if budget and node.kind == "refine" and by_id.get(node.parent) is not None:
            fixes[node.id] = by_id[node.parent]
            budget -= 1
    detours = _refuted_branches(tree, best, on_path, budget) if budget else {}
    out: list[Node] = []
    for node in best:
        if node.id in fixes:
            critic = fixes[node.id]
            out += [critic, _reflection(critic)]
        out.append(node)
        for branch, critic in detours.get(node.id, ()):
            out += [*branch, critic, _reflection(critic)]
    return out


def told_path(tree: Tree, journey: bool, max_branches: int = 1) -> tuple[list[Node] | None, list[Node]]:
    """The path a marco or sft record is written from, and the nodes after the root whose
    text it tells: with `journey`, journey_path and all of it; else best_correct_path with
    the steps its refines rewrote left out (reasoning_nodes). (None, []) with no correct path."""
    if journey:
        path = journey_path(tree, max_branches)
        return path, path[1:] if path else []
    path = best_correct_path(tree)
    return path, reasoning_nodes(path) if path else []


def _refuted_branches(
    tree: Tree, best: list[Node], on_path: set[int], budget: int
) -> dict[int, list[tuple[list[Node], Node]]]:
    """Up to `budget` refuted branches, keyed by the id of the path node they branch from."""
    kids = tree.children()
    found: dict[int, list[tuple[list[Node], Node]]] = {}
    for anchor in best[:-1]:  # a branch after the final answer would end the journey wrong
        # Depth-first through the alternatives under `anchor`, in creation order.
        stack = [[c] for c in reversed(kids[anchor.id]) if c.id not in on_path and c.kind in ("step", "refine")]
        while stack and budget:
            branch = stack.pop()
            node = branch[-1]
            critic = next((c for c in kids[node.id] if c.kind == "critic"), None)
            if critic is not None and (node.rating == "negative" or node.value < LOW_VALUE):
                found.setdefault(anchor.id, []).append((branch, critic))
                budget -= 1
                continue
            stack.extend(branch + [c] for c in reversed(kids[node.id]) if c.kind in ("step", "refine"))
        if not budget:
            break
    return found


def _reflection(critic: Node) -> Node:
    return Node(id=-1, parent=critic.id, kind=REFLECTION_KIND, text=REFLECTION)


def _mean_value(path: list[Node]) -> float:
    body = path[1:]
    return sum(n.value for n in body) / len(body) if body else 0.0



