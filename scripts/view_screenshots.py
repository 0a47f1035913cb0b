"""Make the README's screenshots of `cotgen view`: docs/view-tree.png and docs/view-index.png.

Builds a small hand-written search tree (a GSM8K-style problem with a wrong branch, a critic
and its refine), writes the site with `cotgen view`, and photographs it in headless Chromium
(Debian's, driven by Playwright). Run: .venv/bin/python scripts/view_screenshots.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree

DOCS = Path(__file__).resolve().parents[1] / "docs"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def felix() -> Tree:
    t = Tree.new("The average speed for an hour drive is 66 miles per hour. If Felix wanted to drive "
                 "twice as fast for 4 hours, how many miles will he cover?", answer="528", model="demo")
    def add(parent, kind, text, value=0.0, visits=1, **kw):
        rating = kw.pop("rating", "unknown" if kind == "critic" else "positive" if value >= 0.5 else "negative")
        return t.add(parent, kind, text, value=value, visits=visits, rating=rating,
                     prior=kw.pop("prior", 0.33), tokens=len(text) // 4, q_estimate=kw.pop("q", value), **kw).id
    a = add(0, "step", "Twice as fast as 66 mph is 2 * 66 = 132 mph.", 0.82, 9)
    b = add(0, "step", "Twice as fast means 66 + 2 = 68 mph.", 0.21, 4)
    c = add(0, "step", "Let d be the distance: d = r * t.", 0.55, 5)
    a1 = add(a, "step", "He keeps that speed for 4 hours.", 0.78, 5)
    a2 = add(a, "step", "In 4 hours at 66 mph he covers 4 * 66 = 264 miles.", 0.35, 2)
    add(a2, "conclusion", "So he covers \\boxed{264} miles.", 0.0, terminal=True, correct=False)
    a11 = add(a1, "step", "Distance = speed * time = 132 * 4 = 528 miles.", 0.93, 3)
    add(a11, "conclusion", "The answer is \\boxed{528}.", 1.0, 2, terminal=True, correct=True)
    a12 = add(a1, "step", "132 * 4 = 428 miles.", 0.15, 1)
    k = add(a12, "critic", "132 * 4 is 528, not 428: 130 * 4 = 520 and 2 * 4 = 8.")
    r = add(k, "refine", "132 * 4 = 528 miles.", 0.85, 1)
    add(r, "conclusion", "He will cover \\boxed{528} miles.", 0.9, terminal=True, correct=True)
    kb = add(b, "critic", "'Twice as fast' doubles the speed; adding 2 mph is not doubling.")
    rb = add(kb, "refine", "Twice as fast is 2 * 66 = 132 mph.", 0.74, 2)
    rb1 = add(rb, "step", "Over 4 hours: 132 * 4 = 528 miles.", 0.8, 1)
    add(rb1, "conclusion", "\\boxed{528}", 0.95, terminal=True, correct=True)
    b1 = add(b, "step", "In 4 hours: 68 * 4 = 272 miles.", 0.1, 1)
    add(b1, "conclusion", "He covers \\boxed{272} miles.", 0.0, terminal=True, correct=False)
    c1 = add(c, "step", "r = 2 * 66 = 132 and t = 4, so d = 132 * 4 = 528.", 0.7, 2)
    add(c1, "conclusion", "d = \\boxed{528} miles.", 0.9, terminal=True, correct=True)
    c2 = add(c, "step", "r = 66 and t = 2 * 4 = 8 hours, so d = 66 * 8 = 528.", 0.5, 2)
    add(c2, "conclusion", "\\boxed{528}", 0.6, terminal=True, correct=True)
    t.stats.simulations, t.stats.generated_tokens = 16, sum(n.tokens for n in t.nodes)
    t.check()
    return t


def main() -> int:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        others = [Tree.new(f"What is {i} * {i + 3}?", str(i * (i + 3))) for i in range(2, 6)]
        TreeShardWriter(work / "run").write([felix(), *others])
        subprocess.run([sys.executable, "-m", "cotgen.cli.main", "view", str(work / "run"), "--out", str(work / "site")], check=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1600, "height": 860})
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
            page.goto((work / "site" / "trees" / "00000.html").as_uri())
            page.wait_for_function("() => document.body.dataset.drawn === '1'")  # no eval under the pages' CSP
            page.locator('#viewport [data-node-id="10"] .shape').click()
            page.locator('#viewport [data-node-id="3"] .shape').hover()
            page.screenshot(path=str(DOCS / "view-tree.png"))
            page.goto((work / "site" / "index.html").as_uri())
            page.screenshot(path=str(DOCS / "view-index.png"), clip={"x": 0, "y": 0, "width": 1600, "height": 300})
            browser.close()
    print(f"wrote {DOCS / 'view-tree.png'} and {DOCS / 'view-index.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
