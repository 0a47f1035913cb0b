"""Benchmark: `cotgen view` -- the time a 2,000-node tree page takes to draw in headless
Chromium, and the size of the site for 1,000 trees. Targets: under 1 s, under 50 MB."""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

SEED = 14
SITE_TREES = int(os.environ.get("BENCH_VIEW_TREES", "1000"))
# A tree of the default search (16 simulations x branch 3 + the root = 49 nodes), each
# node's text as long as a 96-token step gets (120-400 characters).
NODES_PER_TREE = 49
BIG_TREE_NODES = 2000
PAGE_LOADS = 5  # the median of this many loads of the big page is the figure
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

_WORDS = (
    "we the of add multiply so then total each number gives step check answer is divide "
    "apples per hour miles cost sum twice half remaining equals therefore first next since"
).split()


def _text(rng: random.Random) -> str:
    words, n = [], rng.randint(120, 400)
    while sum(len(w) + 1 for w in words) < n:
        words.append(rng.choice(_WORDS) if rng.random() < 0.85 else f"${rng.randint(2, 99)} \\times {rng.randint(2, 99)}$")
    return " ".join(words).capitalize() + "."


def make_tree(i: int, nodes: int, rng: random.Random):
    """A sound search-shaped tree: up to 3 children a node, critics with one refine each,
    about a fifth of the expansions concluding, conclusions graded."""
    from cotgen.tree import Tree

    t = Tree.new(f"Problem {i}: " + _text(rng), str(i))
    open_ids = [0]
    while len(t.nodes) < nodes:
        parent = t.nodes[rng.choice(open_ids)]
        if parent.kind == "critic":
            kind = "refine"
        elif parent.kind != "problem" and rng.random() < 0.15:
            kind = "critic"
        elif parent.kind != "problem" and rng.random() < 0.2:
            kind = "conclusion"
        else:
            kind = "step"
        common = dict(value=rng.random(), visits=rng.randint(1, 16), prior=rng.random(),
                      tokens=rng.randint(20, 96), q_estimate=rng.random())  # fmt: skip
        if kind == "conclusion":
            good = rng.random() < 0.4
            node = t.add(parent.id, kind, _text(rng) + f" So the answer is \\boxed{{{i if good else -1}}}.",
                         terminal=True, correct=good, rating="positive" if good else "negative", **common)
        else:
            node = t.add(parent.id, kind, _text(rng), rating="unknown" if kind == "critic"
                         else rng.choice(("positive", "negative")), **common)  # fmt: skip
            open_ids.append(node.id)
        siblings = sum(n.parent == parent.id for n in t.nodes[parent.id:])
        if parent.id in open_ids and (siblings >= 3 or parent.kind == "critic"):
            open_ids.remove(parent.id)
    t.stats.simulations = nodes // 3
    t.stats.generated_tokens = sum(n.tokens for n in t.nodes)
    return t


def _find_chromium() -> str | None:
    for candidate in (os.environ.get("COTGEN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


_EXPAND_ALL = """() => new Promise((done) => {
  const t0 = performance.now();
  document.getElementById("expand-all").click();
  requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0));
})"""


def _seconds_to_draw(page_path: Path) -> tuple[float, float] | None:
    """Medians over PAGE_LOADS fresh loads of the time from navigation start to the layout
    drawn and painted, as the page itself measures it (performance.now()), and of the time
    "expand all" then takes to draw every node."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("  playwright is not installed: view_seconds_2k_nodes not measured", file=sys.stderr)
        return None
    executable = _find_chromium()
    if executable is None:
        print("  no Chromium (apt-get install chromium): view_seconds_2k_nodes not measured", file=sys.stderr)
        return None
    times, expand = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            for _ in range(PAGE_LOADS):
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                outside: list[str] = []

                def guard(route, outside=outside):
                    if route.request.url.startswith("file://"):
                        route.continue_()
                    else:
                        outside.append(route.request.url)
                        route.abort()

                page.route("**/*", guard)
                page.goto(page_path.resolve().as_uri())
                page.wait_for_function("() => document.body.dataset.drawn === '1'", timeout=60_000)
                drawn = page.evaluate("window.cotgenView")
                assert drawn["nodes"] == page.locator("[data-node-id]").count() == BIG_TREE_NODES, drawn
                assert not outside, outside
                times.append(drawn["paintedMs"] / 1000)
                # Then every node: the page opens big trees partly collapsed.
                expand.append(page.evaluate(_EXPAND_ALL) / 1000)
                assert page.locator(".node.gone").count() == 0
                context.close()
        finally:
            browser.close()
    print(f"  2,000-node page drawn in {', '.join(f'{t:.3f}' for t in times)} s; "
          f"expanded in {', '.join(f'{t:.3f}' for t in expand)} s", file=sys.stderr)
    return statistics.median(times), statistics.median(expand)


def run(work: Path) -> dict[str, float]:
    from cotgen.io.writers import TreeShardWriter
    from cotgen.view.site import build_site

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = random.Random(SEED)
    TreeShardWriter(work / "run").write([make_tree(i, NODES_PER_TREE, rng) for i in range(SITE_TREES)])
    TreeShardWriter(work / "big").write([make_tree(0, BIG_TREE_NODES, rng)])

    t0 = time.perf_counter()
    summary = build_site([work / "run"], work / "site")
    build_s = time.perf_counter() - t0
    assert summary.pages == SITE_TREES, summary.as_json()
    site_bytes = sum(p.stat().st_size for p in (work / "site").rglob("*") if p.is_file())
    print(f"  {SITE_TREES:,} trees of {NODES_PER_TREE} nodes: {site_bytes / 1e6:.1f} MB, built in {build_s:.1f} s",
          file=sys.stderr)

    build_site([work / "big"], work / "big-site")
    figures = {
        "view_site_mb_1k_trees": site_bytes / 1e6 * 1000 / SITE_TREES,
        "view_build_s_1k_trees": build_s * 1000 / SITE_TREES,
    }
    seconds = _seconds_to_draw(work / "big-site" / "trees" / "00000.html")
    if seconds is not None:
        figures["view_seconds_2k_nodes"], figures["view_expand_all_seconds_2k_nodes"] = seconds
    return figures
