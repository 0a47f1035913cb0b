"""The Tree and Node records, their invariants, and the Arrow schema of tree shards.

Standard library only at import time: the search core imports this module and must
stay free of torch, pyarrow and files. `arrow_schema()` imports pyarrow when called.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from cotgen.answers import extract_answer
from cotgen.errors import InvalidTree

KINDS = ("problem", "step", "critic", "refine", "conclusion")
RATINGS = ("positive", "negative", "unknown")

def has_final_answer(text: str) -> bool:
    """True when `text` states a final answer the grader would extract (cotgen.answers)."""
    return extract_answer(text) is not None


def may_be_terminal(kind: str, text: str) -> bool:
    """Whether a node of `kind` with `text` ends a solution: a conclusion, or a step (or a
    refined step) that states a final answer. The search marks exactly these terminal."""
    return kind == "conclusion" or (kind in ("step", "refine") and has_final_answer(text))


def tree_id(problem: str, answer: str | None) -> str:
    """Stable id of a tree: the same problem text and ground truth always give the same id."""
    h = hashlib.sha256()
    # surrogatepass: text read from JSON may hold a lone surrogate, which validate reports;
    # the id must still be computable (valid text encodes the same either way).
    h.update(problem.encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    h.update((answer if answer is not None else "\x00<none>").encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Node:
    """One node of a search tree. Field meanings are in docs/ARCHITECTURE.md (The Tree)."""

    id: int  # 0 = root, then creation order
    parent: int  # -1 for the root
    kind: str  # one of KINDS
    text: str
    prior: float = 1.0  # policy probability among its siblings
    visits: int = 0
    value: float = 0.0  # mean backed-up value in [0, 1]
    q_estimate: float | None = None  # the value head's own estimate, before backup
    rating: str = "unknown"  # one of RATINGS
    terminal: bool = False
    correct: bool | None = None  # grader's verdict; only on terminal nodes
    tokens: int = 0
    logprob: float | None = None  # mean token log-prob of the text
    truncated: bool = False  # the text was cut by a token limit: never an answer, never expanded
    # Why `correct` is not the grader's comparison: grading ran out of time (the answer is
    # then graded wrong). None for every ordinary verdict; only on terminal nodes.
    grade_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TreeStats:
    simulations: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    correct_leaves: int = 0
    prompt_tokens: int = 0  # prompt tokens the engine processed for this tree (0 where it does not say)


@dataclass
class Tree:
    """One problem and every node the search made for it."""

    problem: str
    answer: str | None = None
    source: str = ""
    model: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    stats: TreeStats = field(default_factory=TreeStats)
    created_at: str = field(default_factory=utc_now)
    id: str = ""  # filled from problem + answer when empty
    # Set when the search for this tree failed; the tree is kept so a run records why.
    error: str | None = None

    def __post_init__(self) -> None:
        # A record read from a file may hold nulls or other types here; broken_invariants names
        # them, so only a well-typed record gets its id filled in.
        if self.id == "" and isinstance(self.problem, str) and isinstance(self.answer, (str, type(None))):
            self.id = tree_id(self.problem, self.answer)

    # -- building -------------------------------------------------------------------
    @classmethod
    def new(cls, problem: str, answer: str | None = None, **kw: Any) -> Tree:
        """A tree holding only its root node."""
        tree = cls(problem=problem, answer=answer, **kw)
        tree.nodes.append(Node(id=0, parent=-1, kind="problem", text=problem))
        return tree

    def add(self, parent: int, kind: str, text: str, **kw: Any) -> Node:
        """Append a child of `parent`; ids come from the tree (creation order)."""
        node = Node(id=len(self.nodes), parent=parent, kind=kind, text=text, **kw)
        self.nodes.append(node)
        return node

    # -- navigation -----------------------------------------------------------------
    @property
    def root(self) -> Node:
        return self.nodes[0]

    def children(self) -> dict[int, list[Node]]:
        """Map node id -> children in creation order (every id present)."""
        out: dict[int, list[Node]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            if n.parent in out:
                out[n.parent].append(n)
        return out

    def by_id(self) -> dict[int, Node]:
        return {n.id: n for n in self.nodes}

    def path_to(self, node_id: int, index: dict[int, Node] | None = None) -> list[Node]:
        """Root-to-node path, root first. `index`: a `by_id()` the caller built once, for
        many paths of an unchanged tree."""
        index = index if index is not None else self.by_id()
        path: list[Node] = []
        cur: Node | None = index.get(node_id)
        while cur is not None:
            path.append(cur)
            cur = index.get(cur.parent)
        return path[::-1]

    def preorder(self) -> Iterator[Node]:
        """Nodes parent-before-children, siblings in creation order."""
        kids = self.children()
        stack = [self.root] if self.nodes else []
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(kids[node.id]))

    def leaves(self) -> list[Node]:
        kids = self.children()
        return [n for n in self.nodes if not kids[n.id]]

    # -- invariants -----------------------------------------------------------------
    def check(self) -> None:
        """Raise InvalidTree naming every broken invariant."""
        broken = broken_invariants(self)
        if broken:
            raise InvalidTree(f"tree {self.id}: " + "; ".join(broken))

    # -- rows -----------------------------------------------------------------------
    def to_row(self) -> dict[str, Any]:
        """The tree as one row of a tree shard (see arrow_schema)."""
        return {
            "id": self.id,
            "problem": self.problem,
            "answer": self.answer,
            "source": self.source,
            "model": self.model,
            "config": json.dumps(self.config, sort_keys=True, ensure_ascii=False),
            "nodes": [n.to_dict() for n in self.nodes],
            "stats": asdict(self.stats),
            "created_at": self.created_at,
            "error": self.error,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Tree:
        """Inverse of to_row. Raises InvalidTree naming the field that is missing or mistyped;
        the values of a well-shaped record are then checked by broken_invariants."""
        if not isinstance(row, dict):
            raise InvalidTree(f"not a tree record: a {_type_name(row)}, expected an object")
        for name in ("id", "problem", "nodes"):
            if name not in row:
                raise InvalidTree(f"not a tree record: no '{name}' field")
        for name in ("id", "problem"):
            if not isinstance(row[name], str):
                raise InvalidTree(f"field '{name}' is {_type_name(row[name])}, expected a string")
        nodes = row["nodes"]
        if not isinstance(nodes, list):
            raise InvalidTree(f"field 'nodes' is {_type_name(nodes)}, expected a list of node records")
        config = parse_config(row.get("config"))
        stats = row.get("stats") or {}
        if not isinstance(stats, dict):
            raise InvalidTree(f"field 'stats' is {_type_name(stats)}, expected an object")
        built = []
        for pos, n in enumerate(nodes):
            if not isinstance(n, dict):
                raise InvalidTree(f"node at position {pos}: {_type_name(n)}, expected a node record")
            missing = [k for k in _REQUIRED_NODE_FIELDS if k not in n]
            if missing:
                raise InvalidTree(f"node at position {pos}: no {', '.join(missing)} field")
            built.append(Node(**{k: n[k] for k in _NODE_FIELDS if k in n}))
        try:
            return cls(
                id=row["id"],
                problem=row["problem"],
                answer=row.get("answer"),
                source=row.get("source") or "",
                model=row.get("model") or "",
                config=config,
                nodes=built,
                stats=TreeStats(**{k: stats[k] for k in _STATS_FIELDS if k in stats}),
                created_at=row.get("created_at") or "",
                error=row.get("error"),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidTree(f"not a tree record ({type(exc).__name__}: {exc})") from None


def parse_config(value: Any) -> dict[str, Any]:
    """A tree's `config` column (JSON text, or already a mapping) as a dict; InvalidTree
    naming the field when it is not a JSON object (or nests too deeply to read)."""
    if not value:
        return {}
    try:
        config = json.loads(value) if isinstance(value, str) else dict(value)
    except RecursionError:
        raise InvalidTree("field 'config' is JSON nested too deeply to read") from None
    except (TypeError, ValueError) as exc:
        raise InvalidTree(f"field 'config' is not a JSON object ({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict):
        raise InvalidTree(f"field 'config' is not a JSON object but {_type_name(config)}")
    return config


def _type_name(value: Any) -> str:
    """'null', 'an int', 'a list': how messages name the type a field holds."""
    if value is None:
        return "null"
    name = {"str": "string", "dict": "object", "bool": "boolean"}.get(type(value).__name__, type(value).__name__)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def solution_steps(path: Iterable[Node]) -> list[Node]:
    """The steps a path states, past its root: a critic withdraws the step it criticized and
    the refine under it takes that step's place, so the result reads as one clean solution."""
    steps: list[Node] = []
    for node in path:
        if node.kind == "problem":
            continue
        if node.kind == "critic":
            if steps:
                steps.pop()
            continue
        steps.append(node)
    return steps


# The largest node id: a tree shard stores node ids as int32 (arrow_schema).
MAX_NODE_ID = 2**31 - 1
_NODE_FIELDS = tuple(f.name for f in fields(Node))
_STATS_FIELDS = tuple(f.name for f in fields(TreeStats))
_REQUIRED_NODE_FIELDS = ("id", "parent", "kind", "text")
# What each node field must hold: (accepted types, may it be null). bool is an int in
# Python, so it is refused by name where an int is wanted.
_NODE_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((int,), False),
    "parent": ((int,), False),
    "kind": ((str,), False),
    "text": ((str,), False),
    "prior": ((int, float), False),
    "visits": ((int,), False),
    "value": ((int, float), False),
    "q_estimate": ((int, float), True),
    "rating": ((str,), False),
    "terminal": ((bool,), False),
    "correct": ((bool,), True),
    "tokens": ((int,), False),
    "logprob": ((int, float), True),
    "truncated": ((bool,), False),
    "grade_note": ((str,), True),
}


def record_problems(tree: Tree) -> list[str]:
    """Fields of the record that hold the wrong type (a null problem, an int id, a null
    node text); [] when every field has its type. Checked before any invariant, which
    would otherwise trip over such a value."""
    out: list[str] = []
    if not isinstance(tree.id, str) or not tree.id:
        out.append(f"the tree id is {_type_name(tree.id) if tree.id != '' else 'empty'}, expected a non-empty string")
    if not isinstance(tree.problem, str):
        out.append(f"field 'problem' is {_type_name(tree.problem)}, expected a string")
    if tree.answer is not None and not isinstance(tree.answer, str):
        out.append(f"field 'answer' is {_type_name(tree.answer)}, expected a string or null")
    if tree.error is not None and not isinstance(tree.error, str):
        out.append(f"field 'error' is {_type_name(tree.error)}, expected a string or null")
    for name in _STATS_FIELDS:
        value = getattr(tree.stats, name, None)
        if type(value) not in (int, float):
            out.append(f"stats field '{name}' is {_type_name(value)}, expected a number")
    if not isinstance(tree.nodes, list):
        out.append(f"field 'nodes' is {_type_name(tree.nodes)}, expected a list of node records")
        return out
    num = (int, float)
    for n in tree.nodes:
        # One cheap pass first: export calls this for every tree, so the detailed pass
        # runs only for a record that has something wrong.
        if (type(n.id) is not int or type(n.parent) is not int or type(n.kind) is not str
                or type(n.text) is not str or type(n.rating) is not str or type(n.visits) is not int
                or type(n.value) not in num or type(n.prior) not in num or type(n.terminal) is not bool
                or type(n.tokens) is not int or (n.correct is not None and type(n.correct) is not bool)
                or (n.q_estimate is not None and type(n.q_estimate) not in num)
                or (n.logprob is not None and type(n.logprob) not in num)
                or type(n.truncated) is not bool or (n.grade_note is not None and type(n.grade_note) is not str)):
            break
    else:
        return out
    for pos, n in enumerate(tree.nodes):
        for name, (types, nullable) in _NODE_TYPES.items():
            value = getattr(n, name)
            if value is None and nullable:
                continue
            if type(value) not in types:
                wanted = "a number" if float in types else _TYPE_WORDS[types[0]]
                out.append(f"node at position {pos}: field '{name}' is {_type_name(value)}, "
                           f"expected {wanted}{' or null' if nullable else ''}")
        if len(out) >= 10:  # a column of the wrong type would repeat on every node
            out.append("(more fields of the wrong type not listed)")
            break
    return out


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}


def broken_invariants(tree: Tree) -> list[str]:
    """Every broken invariant of `tree`, as messages; [] when the tree is sound.

    The one place the invariants of the Tree (docs/ARCHITECTURE.md) are written down.
    """
    out = record_problems(tree)
    if out:
        return out
    if not tree.nodes:
        return ["the tree has no nodes (a root with id 0 is required)"]
    roots = [n for n in tree.nodes if n.parent == -1]
    if len(roots) != 1:
        out.append(f"expected exactly one root (parent -1), found {len(roots)}")
    if tree.nodes[0].id != 0 or tree.nodes[0].parent != -1:
        out.append("the first node must be the root, with id 0 and parent -1")
    if tree.nodes[0].kind != "problem":
        out.append(f"the root must have kind 'problem', not '{tree.nodes[0].kind}'")
    seen: dict[int, Node] = {}
    for pos, n in enumerate(tree.nodes):
        label = f"node {n.id}"
        if n.id in seen:
            out.append(f"{label}: duplicate id")
            continue
        if n.kind not in KINDS:
            out.append(f"{label}: unknown kind '{n.kind}' (expected one of {', '.join(KINDS)})")
        if n.rating not in RATINGS:
            out.append(f"{label}: unknown rating '{n.rating}' (expected one of {', '.join(RATINGS)})")
        if pos > 0:
            if n.parent == -1:
                pass  # counted among the roots above
            elif n.parent not in seen:
                # Parents are created before children, so an unseen parent is either
                # missing or later in the list; either way a cycle cannot form.
                out.append(f"{label}: parent {n.parent} does not exist before it")
            else:
                parent = seen[n.parent]
                if n.kind == "problem":
                    out.append(f"{label}: only the root may have kind 'problem'")
                if n.kind == "critic" and parent.kind not in ("step", "refine", "conclusion"):
                    out.append(f"{label}: a critic's parent must be a step, refine or conclusion, not '{parent.kind}'")
                if n.kind == "refine" and parent.kind != "critic":
                    out.append(f"{label}: a refine node's parent must be a critic, not '{parent.kind}'")
        if n.terminal and not may_be_terminal(n.kind, n.text):
            out.append(f"{label}: terminal nodes must be conclusions or steps with a final answer")
        if n.truncated and n.terminal:
            out.append(f"{label}: a truncated node (cut by a token limit) cannot be terminal")
        if n.correct is not None and not n.terminal:
            out.append(f"{label}: 'correct' is set on a node that is not terminal")
        if n.grade_note is not None and not n.terminal:
            out.append(f"{label}: 'grade_note' is set on a node that is not terminal")
        if n.kind == "critic" and n.rating != "unknown":
            out.append(f"{label}: critic nodes are always rated 'unknown'")
        if not (0.0 <= n.value <= 1.0):
            out.append(f"{label}: value {n.value} is outside [0, 1]")
        if n.visits < 0:
            out.append(f"{label}: negative visit count")
        if not (0 <= n.id <= MAX_NODE_ID):
            # Export and the tree shard could not write it (OpenLongCoT local ids are >= 0;
            # a shard stores ids as int32), so validate refuses it here.
            out.append(f"{label}: id outside 0..{MAX_NODE_ID}")
        seen[n.id] = n
    return out


def arrow_schema():  # -> pyarrow.Schema
    """Arrow schema of a tree shard row (one row per tree)."""
    import pyarrow as pa

    node = pa.struct(
        [
            ("id", pa.int32()),
            ("parent", pa.int32()),
            ("kind", pa.string()),
            ("text", pa.string()),
            ("prior", pa.float64()),
            ("visits", pa.int32()),
            ("value", pa.float64()),
            ("q_estimate", pa.float64()),
            ("rating", pa.string()),
            ("terminal", pa.bool_()),
            ("correct", pa.bool_()),
            ("tokens", pa.int32()),
            ("logprob", pa.float64()),
            ("truncated", pa.bool_()),
            ("grade_note", pa.string()),
        ]
    )
    stats = pa.struct(
        [
            ("simulations", pa.int32()),
            ("generated_tokens", pa.int64()),
            ("seconds", pa.float64()),
            ("correct_leaves", pa.int32()),
            ("prompt_tokens", pa.int64()),
        ]
    )
    return pa.schema(
        [
            ("id", pa.string()),
            ("problem", pa.string()),
            ("answer", pa.string()),
            ("source", pa.string()),
            ("model", pa.string()),
            ("config", pa.string()),
            ("nodes", pa.list_(node)),
            ("stats", stats),
            ("created_at", pa.string()),
            ("error", pa.string()),
        ],
        metadata={b"cotgen": b"tree-shard/1"},
    )
