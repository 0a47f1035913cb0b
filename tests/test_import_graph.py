"""The module import graph of cotgen has no circle, and the layers keep to their side.

Read statically from the source: every `import` and `from ... import` of a cotgen module,
at module level or inside a function (an import deferred into a function is still a
dependency: it only hides a circle until that function runs). Imports under
`if TYPE_CHECKING:` are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cotgen"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The cotgen modules `name` imports. Importing a.b.c runs a/__init__ and a/b/__init__
    too, so those count, except the packages that hold `name` itself (already running)."""
    out: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        while target:
            if target != name and not name.startswith(target + ".") and target != "cotgen":
                out.add(target)
            target = target.rpartition(".")[0]

    stack: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while stack:
        node = stack.pop()
        if _type_checking_only(node):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                add(full if full in known else node.module)
        stack.extend(ast.iter_child_nodes(node))
    return {m for m in out if m.startswith("cotgen")}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_circle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(g) == [["a", "b", "c"]]


def test_cotgen_has_no_import_circle():
    g = graph()
    assert "cotgen.synthesize" in g and g["cotgen.synthesize"]  # the reader sees the imports
    assert circles(g) == []


def test_search_imports_only_search_and_tree():
    outside = {(name, dep) for name, deps in graph().items() if name.startswith("cotgen.search")
               for dep in deps if not dep.startswith("cotgen.search") and dep != "cotgen.tree"}
    assert outside == set()


def test_io_and_formats_meet_only_at_the_format_registry():
    """io/ may look a format up by name (cotgen.formats); no module of formats/ imports io/."""
    crossings = set()
    for name, deps in graph().items():
        for dep in deps:
            if name.startswith("cotgen.io") and dep.startswith("cotgen.formats.") \
                    or name.startswith("cotgen.formats") and dep.startswith("cotgen.io"):
                crossings.add((name, dep))
    assert crossings == set()


def test_the_worker_knows_nothing_of_ray_or_of_synthesize():
    deps = graph()["cotgen.executors.worker"]
    assert "cotgen.synthesize" not in deps and "cotgen.executors.ray_cluster" not in deps
    source = (PACKAGE / "executors" / "worker.py").read_text(encoding="utf-8")
    assert "import ray" not in source
