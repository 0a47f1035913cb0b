"""The site in a real browser (headless Chromium): offline, every node drawn, click, collapse, keys."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from view_sample_trees import big_tree, small_tree

from cotgen.io.writers import TreeShardWriter
from cotgen.view.site import build_site

# A function, not an expression: Playwright evaluates a polled expression with eval, which the
# pages' Content-Security-Policy forbids.
DRAWN = "() => document.body.dataset.drawn === '1'"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("view")
    TreeShardWriter(tmp / "run").write([small_tree(), big_tree(2000, seed=3)])
    build_site([tmp / "run"], tmp / "site")
    return tmp / "site"


def node(page, node_id: int):
    return page.locator(f'#viewport [data-node-id="{node_id}"]')


def test_big_tree_page_draws_every_node_offline(offline, site: Path):
    offline.open(site / "trees" / "00001.html")
    page = offline.page
    page.wait_for_function(DRAWN)
    assert page.locator("[data-node-id]").count() == 2000
    assert page.evaluate("window.cotgenView.nodes") == 2000
    # opened readable: a few levels shown, the rest collapsed, the best path drawn
    assert 10 < page.locator(".node:not(.gone)").count() < 400
    assert page.locator(".edge.best:not(.gone)").count() >= 1
    page.click("#expand-all")
    assert page.locator(".node.gone").count() == 0
    assert offline.outside == [] and offline.errors == []


def test_click_a_node_to_read_it_then_collapse_and_expand(offline, site: Path):
    offline.open(site / "trees" / "00000.html")
    page = offline.page
    page.wait_for_function(DRAWN)
    tree = small_tree()
    assert page.locator("[data-node-id]").count() == len(tree.nodes)
    assert page.locator("h1.question").inner_text() == tree.problem
    assert "14" in page.locator(".gold").inner_text()

    node(page, 3).locator(".shape").click()
    assert page.locator("#details .node-text").inner_text() == "Then 2 + 12 = 14."
    assert "q_estimate" in page.locator("#details .fields").inner_text()
    assert page.locator("#details .path").inner_text() == "0 › 1 › 3"
    page.locator("#details .crumb", has_text="1").click()  # the path's ids select their node
    assert page.locator("#details h2").inner_text() == "node 1 · step"
    node(page, 2).locator(".shape").hover()
    assert "visits 3" in page.locator("#tooltip").inner_text()

    node(page, 1).locator(".knob").click()  # collapse the subtree under node 1
    for hidden in (3, 4, 7):
        assert node(page, hidden).is_hidden()
    assert node(page, 1).is_visible() and "(+3)" in node(page, 1).text_content()
    assert node(page, 2).is_visible()
    page.click("#toggle-collapse")  # the details panel's button expands it again
    for shown in (3, 4, 7):
        assert node(page, shown).is_visible()
    assert offline.outside == [] and offline.errors == []


def test_keys_move_between_parent_child_and_siblings(offline, site: Path):
    offline.open(site / "trees" / "00000.html")
    page = offline.page
    page.wait_for_function(DRAWN)
    selected = lambda: page.locator("#viewport .node.selected").get_attribute("data-node-id")  # noqa: E731
    assert selected() == "0"
    page.locator("#canvas").focus()
    for key, expected in [("ArrowRight", "1"), ("ArrowDown", "2"), ("ArrowRight", "5"),
                          ("ArrowDown", "6"), ("ArrowUp", "5"), ("ArrowLeft", "2"), ("ArrowLeft", "0")]:
        page.keyboard.press(key)
        assert selected() == expected, key
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")  # space collapses the selected node
    assert node(page, 3).is_hidden()
    page.keyboard.press(" ")
    page.keyboard.press("ArrowRight")
    assert selected() == "3"
    node(page, 1).locator(".knob").click()  # folding away the selection selects the folded node
    assert selected() == "1" and node(page, 3).is_hidden()
    page.keyboard.press("b")  # b jumps to the best leaf, opening what hides it
    assert selected() == "4" and node(page, 4).is_visible()


def test_colour_by_value_or_rating(offline, site: Path):
    offline.open(site / "trees" / "00000.html")
    page = offline.page
    page.wait_for_function(DRAWN)
    fill = lambda i: node(page, i).locator(".shape").evaluate("e => getComputedStyle(e).fill")  # noqa: E731
    by_value = fill(1), fill(3)
    assert by_value[0] != by_value[1]  # values 0.7 and 0.9
    page.select_option("#colour-by", "rating")
    assert fill(1) == fill(3) != fill(2)  # positive, positive, negative
    page.keyboard.press("c")
    assert (fill(1), fill(3)) == by_value


def test_index_sorts_searches_and_filters(offline, site: Path):
    offline.open(site / "index.html")
    page = offline.page
    rows = page.locator("#trees tbody tr:not([hidden])")
    assert rows.count() == 2
    page.fill("#search", "2 + 3 * 4")
    assert rows.count() == 1 and "What is 2 + 3 * 4?" in rows.first.inner_text()
    page.fill("#search", "")
    page.select_option("#filter", "failed")
    assert rows.count() == 0 and page.locator("#shown").inner_text() == "showing 0 of 2"
    page.select_option("#filter", "all")
    page.click("#trees th:nth-child(4)")  # nodes, ascending then descending
    assert rows.first.locator("td").nth(3).inner_text() == str(len(small_tree().nodes))
    page.click("#trees th:nth-child(4)")
    assert rows.first.locator("td").nth(3).inner_text() == "2000"
    rows.first.locator("a").click()
    page.wait_for_function(DRAWN)
    assert page.locator("[data-node-id]").count() == 2000
    assert offline.outside == [] and offline.errors == []


def test_screenshot_is_not_blank(offline, site: Path, tmp_path: Path):
    from PIL import Image

    offline.open(site / "trees" / "00000.html")
    offline.page.wait_for_function(DRAWN)
    png = offline.page.locator("#canvas").screenshot(path=str(tmp_path / "tree.png"))
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 50, "the drawing has almost no colours: nothing was drawn"
    background = max(colours)[0] / (image.width * image.height)
    assert background < 0.99, "the drawing is one colour"


def test_the_guard_sees_a_request_leaving_the_page(offline, tmp_path: Path):
    # The offline checks above are only worth something if a request out is caught.
    page = tmp_path / "leaky.html"
    page.write_text('<img src="http://127.0.0.1:9/x.png"><script src="https://example.invalid/x.js"></script>')
    offline.open(page)
    assert "http://127.0.0.1:9/x.png" in offline.outside
    assert "https://example.invalid/x.js" in offline.outside


def test_wheel_zooms_and_dragging_pans(offline, site: Path):
    offline.open(site / "trees" / "00000.html")
    page = offline.page
    page.wait_for_function(DRAWN)
    def view() -> tuple[float, float, float]:
        m = re.fullmatch(r"translate\(([-\d.e]+),([-\d.e]+)\) scale\(([-\d.e]+)\)",
                         page.locator("#viewport").get_attribute("transform"))
        return float(m[1]), float(m[2]), float(m[3])

    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)  # an empty corner of the canvas
    tx, ty, k = view()
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"() => !document.querySelector('#viewport').getAttribute('transform').endsWith('scale({k})')")
    tx, ty, zoomed = view()
    assert zoomed > k * 1.5
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 90, steps=5)
    page.mouse.up()
    assert view() == pytest.approx((tx + 100, ty + 50, zoomed))


def test_a_marco_record_draws_as_its_tree(offline, shared: Path, tmp_path: Path):
    from cotgen.formats.marco import loads_marco, parse_marco

    path = shared / "fixtures" / "marco_cot_demo.json"
    build_site([path], tmp_path / "site")
    tree = parse_marco(loads_marco(path.read_text(encoding="utf-8"))[0])
    offline.open(tmp_path / "site" / "trees" / "00000.html")
    page = offline.page
    page.wait_for_function(DRAWN)
    assert page.locator("[data-node-id]").count() == len(tree.nodes)
    assert "k-conclusion" in node(page, tree.nodes[-1].id).get_attribute("class")
    node(page, 1).locator(".shape").click()  # the first step; the chain runs off the screen
    assert page.locator("#details .node-text").inner_text() == tree.nodes[1].text.strip()
    assert offline.outside == [] and offline.errors == []
