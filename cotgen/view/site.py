"""Trees -> a self-contained static site: index.html, one page per tree, shared assets.

The site opens from file:// with no network: pages link only to files inside the site
(scripts, styles; no fonts, the browser's own are used) and carry their tree as inline JSON,
because a page opened from disk may not fetch() a sibling file.
"""

from __future__ import annotations

import errno
import html
import json
import math
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cotgen.answers import answer_key, extract_answer
from cotgen.errors import UsageError, environment_error, reason_key, refuse_link_to_nowhere
from cotgen.formats.paths import best_correct_path
from cotgen.io.atomic import crash_point
from cotgen.search.vote import answer_leaf
from cotgen.stopping import interrupted_as
from cotgen.tree import Node, Tree, broken_invariants, record_problems

MARKER = "cotgen-site.json"  # written last: its presence marks a folder as a finished site
ASSETS = ("view.css", "tree.js", "index.js")
# The order of a node's fields in the page's JSON; lists instead of objects keep a
# 1,000-tree site small (the keys would repeat for every node).
# Scripts and styles only from the site's own files: no inline script, no event-handler
# attribute, no script from elsewhere runs, whatever a tree's text holds. The tree's data is
# inline JSON, which is not script. Chromium treats 'self' of a file:// page as file:.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'")
HEAD = f"""<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">"""
NODE_FIELDS = ("id", "parent", "kind", "text", "prior", "visits", "value", "q_estimate",
               "rating", "terminal", "correct", "tokens", "logprob", "truncated", "grade_note")  # fmt: skip


@dataclass
class SiteSummary:
    """What a build did. Every input row that made no page is in `skipped`, by reason."""

    out: str
    pages: int = 0
    rows_read: int = 0
    nodes: int = 0
    bytes: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    examples: dict[str, str] = field(default_factory=dict)  # reason -> first row it hit

    def skip(self, reason: str, where: str) -> None:
        key = reason_key(reason)  # as export counts them
        self.skipped[key] += 1
        self.examples.setdefault(key, f"{where}: {reason}"[:500])

    def as_json(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "pages": self.pages,
            "rows_read": self.rows_read,
            "nodes": self.nodes,
            "bytes": self.bytes,
            "skipped": dict(self.skipped.most_common()),
            "examples": self.examples,
        }


@dataclass
class TreeRow:
    """One row of the index page."""

    page: str
    tree_id: str
    problem: str
    answer: str | None
    nodes: int
    depth: int
    correct_leaves: int
    terminal_leaves: int
    best_value: float | None
    failed: bool
    where: str


JS_SAFE_INTEGER = 2**53 - 1


def drawing_problem(tree: Tree) -> str | None:
    """Why the tree cannot be laid out (a root at position 0, each parent before its
    children, unique ids, every field of its type), or None. Other broken invariants are
    shown on the page instead."""
    mistyped = record_problems(tree)  # a null value or text cannot be laid out or summed
    if mistyped:
        return mistyped[0]
    if not tree.nodes or tree.nodes[0].parent != -1:
        return "no root node (the first node must have parent -1)"
    seen: set[int] = set()
    for node in tree.nodes:
        if abs(node.id) > JS_SAFE_INTEGER or abs(node.parent) > JS_SAFE_INTEGER:
            # The page reads ids as JavaScript numbers: beyond 2^53 two ids become one.
            return f"node {node.id}: an id beyond 2^53 - 1, which a browser cannot tell apart from its neighbours"
        if node.id in seen:
            return f"node {node.id}: duplicate id"
        if node is not tree.nodes[0] and node.parent not in seen:
            return f"node {node.id}: parent {node.parent} does not exist before it"
        seen.add(node.id)
    return None


def _voted_answer(text: str) -> str | None:
    """A leaf's answer as the vote counts it: `72` and `72.0` are one answer."""
    answer = extract_answer(text)
    return None if answer is None else answer_key(answer)


def best_path(tree: Tree) -> tuple[list[int], str]:
    """Ids of the path to highlight, root first, and what it is: "correct" (the best correct
    path, as the sft/marco exports choose it), "vote" (a tree with no gold: the path to the
    answer of the value-weighted vote, which the search-quality bench measures far above a
    descent on value), "value" (else the highest-value path), or ""."""
    correct = best_correct_path(tree)
    if correct:
        # best_correct_path leaves critics out; the drawn chain keeps them so it is unbroken.
        return [n.id for n in tree.path_to(correct[-1].id)], "correct"
    leaf = answer_leaf(tree, _voted_answer) if tree.answer is None else None
    if leaf is not None:
        return [n.id for n in tree.path_to(leaf.id)], "vote"
    kids = tree.children()
    path = [tree.root]
    while kids[path[-1].id]:
        # Greedy descent on value, as a search reads its tree; ties go to more visits.
        path.append(max(kids[path[-1].id], key=lambda n: (n.value, n.visits, -n.id)))
    return ([n.id for n in path], "value") if len(path) > 1 else ([], "")


def path_value(tree: Tree, ids: list[int]) -> float | None:
    """Mean value of a path's nodes after the root (the measure best_correct_path ranks by)."""
    by_id = tree.by_id()
    body = [by_id[i].value for i in ids[1:]]
    return sum(body) / len(body) if body else None


def tree_depth(tree: Tree) -> int:
    depth: dict[int, int] = {}
    for node in tree.nodes:  # parents precede children (checked by drawing_problem)
        depth[node.id] = depth.get(node.parent, -1) + 1
    return max(depth.values(), default=0)


def page_data(tree: Tree, index: int, where: str, best: list[int], best_kind: str) -> dict[str, Any]:
    return {
        "index": index,
        "id": tree.id,
        "problem": tree.problem,
        "answer": tree.answer,
        "source": tree.source,
        "model": tree.model,
        "config": tree.config,
        "stats": tree.stats.__dict__,
        "created_at": tree.created_at,
        "error": tree.error,
        "where": where,
        "warnings": broken_invariants(tree),
        "best": best,
        "best_kind": best_kind,
        "fields": NODE_FIELDS,
        "nodes": [_node_row(n) for n in tree.nodes],
    }


def _node_row(node: Node) -> list[Any]:
    return [getattr(node, name) for name in NODE_FIELDS]


def script_json(obj: Any) -> str:
    """JSON safe inside a <script> element: no '<' can close it or open a comment, and no
    NaN or Infinity, which JSON.parse refuses (a -inf logprob is shown as the text "-inf")."""
    text = json.dumps(_finite(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def tree_page(data: dict[str, Any], prev_page: str | None, next_page: str | None) -> str:
    nav = ['<a href="../index.html">all trees</a>']
    nav.append(f'<a href="{_e(prev_page)}" rel="prev">← previous</a>' if prev_page else "<span>← previous</span>")
    nav.append(f'<a href="{_e(next_page)}" rel="next">next →</a>' if next_page else "<span>next →</span>")
    answer = "—" if data["answer"] is None else _e(data["answer"])
    banners = ""
    if data["error"]:
        banners += f'<p class="banner failed">search failed: {_e(data["error"])}</p>'
    if data["warnings"]:
        banners += '<p class="banner warn">broken invariants: ' + _e("; ".join(data["warnings"])) + "</p>"
    return f"""<!doctype html>
<html lang="en"><head>{HEAD}
<title>tree {data["index"]} · {_e(_short(data["problem"], 60))}</title>
<link rel="stylesheet" href="../assets/view.css">
</head><body class="tree-page">
<header>
<nav>{" ".join(nav)} <span class="where">{_e(data["where"])}</span></nav>
<h1 class="question">{_e(data["problem"])}</h1>
<p class="gold">gold answer: <b>{answer}</b>
<span class="meta">tree {_e(data["id"])} · {len(data["nodes"])} nodes · model {_e(data["model"] or "-")}</span></p>
{banners}
<div class="toolbar">
<label>colour by <select id="colour-by"><option value="value">value</option><option value="rating">rating</option></select></label>
<button id="fit" title="f">fit</button><button id="zoom-in" title="+">+</button><button id="zoom-out" title="-">−</button>
<button id="expand-all">expand all</button><button id="best-leaf" title="b">best path</button>
<span class="legend" id="legend"></span>
<span class="help">keys: ←/→ parent/child · ↑/↓ siblings · space collapse · c colour · f fit · b best</span>
</div>
</header>
<main>
<div id="canvas" tabindex="0" aria-label="tree"><svg id="tree-svg"><g id="viewport"></g></svg></div>
<aside id="details"><p class="hint">Click a node to read its full text and fields.</p></aside>
</main>
<div id="tooltip" hidden></div>
<script id="tree-data" type="application/json">{script_json(data)}</script>
<script src="../assets/tree.js"></script>
</body></html>
"""


def index_page(rows: list[TreeRow], summary: SiteSummary) -> str:
    body = []
    for i, r in enumerate(rows):
        has = "yes" if r.correct_leaves else "no"
        best = "" if r.best_value is None else f"{r.best_value:.3f}"
        body.append(
            f'<tr data-has-correct="{has}" data-failed="{"yes" if r.failed else "no"}" title="{_e(r.where)}">'
            f'<td data-sort="{i}">{i}</td>'
            f'<td class="problem" data-sort="{_e(r.problem.lower())}"><a href="{_e(r.page)}">{_e(_short(r.problem, 160))}</a></td>'
            f'<td data-sort="{_e(r.answer or "")}">{_e(_short(r.answer, 40)) if r.answer is not None else "—"}</td>'
            f'<td data-sort="{r.nodes}">{r.nodes}</td><td data-sort="{r.depth}">{r.depth}</td>'
            f'<td data-sort="{r.correct_leaves}">{r.correct_leaves} / {r.terminal_leaves}</td>'
            f'<td data-sort="{best or -1}">{best or "—"}</td>'
            f'<td data-sort="{int(r.failed)}">{"failed" if r.failed else ""}</td></tr>'
        )
    skipped = ""
    if summary.skipped:
        skipped = '<p class="banner warn">' + _e(
            "skipped rows: " + "; ".join(f"{n} × {reason}" for reason, n in summary.skipped.most_common())
        ) + "</p>"
    return f"""<!doctype html>
<html lang="en"><head>{HEAD}
<title>cotgen trees ({len(rows)})</title>
<link rel="stylesheet" href="assets/view.css">
</head><body class="index-page">
<header><h1>cotgen trees</h1>
<p>{len(rows)} trees · {summary.nodes:,} nodes</p>{skipped}
<div class="toolbar">
<input id="search" type="search" placeholder="search problems" aria-label="search problems" size="40">
<select id="filter" aria-label="filter">
<option value="all">all trees</option><option value="correct">with a correct leaf</option>
<option value="none">without a correct leaf</option><option value="failed">failed</option></select>
<span id="shown"></span></div></header>
<main><table id="trees"><thead><tr>
<th data-type="num">#</th><th data-type="text">problem</th><th data-type="text">gold answer</th>
<th data-type="num">nodes</th><th data-type="num">depth</th><th data-type="num" title="correct / terminal leaves">correct leaves</th>
<th data-type="num" title="mean value of the highlighted path after the root">best value</th><th data-type="num">failed</th>
</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table></main>
<script src="assets/index.js"></script>
</body></html>
"""


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse an --out view may not replace. Checked at the start and again just before the
    site is renamed into place: a run or an export may have begun writing there meanwhile."""
    from cotgen.io.layout import LOCK_NAME
    from cotgen.io.runfolder import describe_holder, is_locked

    refuse_link_to_nowhere(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and is_locked(out):
        raise UsageError(f"--out {out}: another cotgen command is writing there "
                         f"({describe_holder(out / LOCK_NAME)}); choose another")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise UsageError(f"--out {out}: the folder is not empty and was not made by cotgen view; choose another")
        if not overwrite:
            raise UsageError(f"--out {out}: a site is already there; give --overwrite to replace it")


def build_site(inputs: Iterable[Path | str], out: Path | str, *, overwrite: bool = False) -> SiteSummary:
    """Write the site for every tree of `inputs` (anything `cotgen export` reads) to `out`.

    An input row that yields no tree, or a tree that cannot be drawn, is skipped and
    counted by reason, as export does.
    """
    from cotgen.io.trees import iter_located_trees, tree_inputs

    readers = tree_inputs([Path(p) for p in inputs])  # checked before anything is written
    _prepare_out(Path(out), overwrite)
    summary = SiteSummary(out=str(out))

    def unreadable(reason: str, where: str) -> None:
        summary.rows_read += 1
        summary.skip(reason, where)

    return write_site(iter_located_trees(readers, on_skip=unreadable), out, overwrite=overwrite, summary=summary)


def write_site(
    trees: Iterable[tuple[Tree, str]],
    out: Path | str,
    *,
    overwrite: bool = False,
    summary: SiteSummary | None = None,
) -> SiteSummary:
    """Write the site for `trees` ((tree, where it was read)) to `out`. Trees stream: only
    the index rows stay in memory.

    The site is built in a sibling folder and renamed into place, so a crash never leaves a
    half-written site under `out`; a previous site there is replaced only with `overwrite`.
    """
    out = Path(out)
    _prepare_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with interrupted_as(f"view interrupted ({{signal}}): no site written to {out}, its partial copy removed"):
        return _build_site(trees, out, tmp, overwrite, summary or SiteSummary(out=str(out)))


def _build_site(trees: Iterable[tuple[Tree, str]], out: Path, tmp: Path, overwrite: bool, summary: SiteSummary) -> SiteSummary:
    (tmp / "trees").mkdir(parents=True)
    rows: list[TreeRow] = []
    try:
        crash_point("staging-made")
        pending: tuple[Path, dict[str, Any], str | None] | None = None  # page waiting for its "next" link
        for tree, where in trees:
            summary.rows_read += 1
            reason = drawing_problem(tree)
            if reason is not None:
                summary.skip(f"cannot be drawn: {reason}", where)
                continue
            index = len(rows)
            page = f"trees/{index:05d}.html"
            best, best_kind = best_path(tree)
            terminal = [n for n in tree.nodes if n.terminal]
            rows.append(TreeRow(
                page=page, tree_id=tree.id, problem=tree.problem, answer=tree.answer,
                nodes=len(tree.nodes), depth=tree_depth(tree),
                correct_leaves=sum(n.correct is True for n in terminal), terminal_leaves=len(terminal),
                best_value=path_value(tree, best), failed=tree.error is not None, where=where,
            ))  # fmt: skip
            summary.nodes += len(tree.nodes)
            if pending is not None:
                _write(*pending, f"{index:05d}.html", summary)
            prev_page = f"{index - 1:05d}.html" if index else None
            pending = (tmp / page, page_data(tree, index, where, best, best_kind), prev_page)
        if pending is not None:
            _write(*pending, None, summary)
        summary.pages = len(rows)
        assets = tmp / "assets"
        assets.mkdir()
        for name in ASSETS:
            data = resources.files("cotgen.view").joinpath("assets", name).read_bytes()
            (assets / name).write_bytes(data)
            summary.bytes += len(data)
        text = index_page(rows, summary).encode("utf-8")
        (tmp / "index.html").write_bytes(text)
        summary.bytes += len(text)
        (tmp / MARKER).write_text(json.dumps({"made_by": "cotgen view", **summary.as_json()}, indent=2) + "\n")
        _replace(tmp, out, overwrite)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        known = environment_error(exc, "write the site", where=out) if isinstance(exc, OSError) else None
        if known is not None:
            raise known from None  # a write() that hit a full disk names no file: name the site
        raise
    return summary


def _write(path: Path, data: dict[str, Any], prev_page: str | None, next_page: str | None, summary: SiteSummary) -> None:
    text = tree_page(data, prev_page, next_page).encode("utf-8")
    path.write_bytes(text)
    summary.bytes += len(text)


def _replace(tmp: Path, out: Path, overwrite: bool) -> None:
    """Put the site built in `tmp` at `out`. Only a site view made (with --overwrite) is moved
    aside and deleted; anything else there now is refused, and stays."""
    _prepare_out(out, overwrite)
    try:
        if (out / MARKER).is_file():  # a site view made, and --overwrite (both checked just above)
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)  # rename never replaces a folder that holds files
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise UsageError(f"--out {out}: another writer put files there while the site was built; "
                             "nothing was written: choose another --out") from None
        raise
