"""Hostile inputs, round 3 (issue 19), item 1: no field of a tree runs as script in view.

A browser test in a module of its own: the browser fixture lives for the module, and a live
Playwright keeps an event loop running that in-process CLI runs elsewhere cannot share.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from corpus import good_tree  # noqa: E402

from cotgen.io.writers import TreeShardWriter  # noqa: E402
from cotgen.view.site import build_site  # noqa: E402

# A function, not an expression: Playwright evaluates a polled expression with eval, which the
# pages' Content-Security-Policy forbids.
DRAWN = "() => document.body.dataset.drawn === '1'"

# 1: stored XSS in view ----------------------------------------------------------------

PAYLOAD = '"><image href="x" onerror="window.pwned=(window.pwned||[]).concat(\'{}\')"/><g class="'


def test_view_runs_no_script_from_a_tree_field(offline, tmp_path: Path):
    tree = good_tree(1)
    tree.nodes[1].kind = PAYLOAD.format("kind")
    tree.nodes[2].rating = PAYLOAD.format("rating")
    tree.nodes[3].text = "<img src=x onerror=\"window.pwned=['text']\">"
    TreeShardWriter(tmp_path / "run").write([tree])
    build_site([tmp_path / "run"], tmp_path / "site")
    page_html = (tmp_path / "site" / "trees" / "00000.html").read_text()
    assert 'http-equiv="Content-Security-Policy"' in page_html and "script-src 'self'" in page_html

    offline.open(tmp_path / "site" / "trees" / "00000.html")
    page = offline.page
    page.wait_for_function(DRAWN)
    for node_id in (1, 2, 3):  # hover each hostile node, as a reader would
        page.locator(f'#viewport [data-node-id="{node_id}"] .shape').first.hover()
        page.locator(f'#viewport [data-node-id="{node_id}"] .shape').first.click()
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#viewport image, #viewport img").count() == 0
    # the hostile values are shown as text, and became no class name
    assert page.locator("#viewport .node.k-other").count() == 1
    assert page.locator("#viewport .node.r-other").count() == 1
    assert page.locator("#tooltip").inner_text().startswith("#3")
    page.locator('#viewport [data-node-id="1"] .shape').first.click()
    assert PAYLOAD.format("kind") in page.locator("#details h2").inner_text()
    # and the page's policy refuses an inline handler even if markup got in some other way
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<img src=\"nothing.png\" onerror=\"window.inline=1\">')")
    page.wait_for_timeout(300)
    assert page.evaluate("window.inline") is None
    assert offline.errors == []
