"""The site `cotgen view` writes: pages, index, best path, escaping, no network references."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from view_sample_trees import big_tree, small_tree

from cotgen.errors import UsageError
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Node, Tree
from cotgen.view.site import MARKER, NODE_FIELDS, best_path, build_site, write_site


def page_json(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    m = re.search(r'<script id="tree-data" type="application/json">(.*?)</script>', text, re.S)
    assert m, f"{path}: no tree data"
    return json.loads(m.group(1))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    failed = Tree.new("A problem the search gave up on.", answer="1")
    failed.error = "engine timed out"
    TreeShardWriter(tmp_path / "run").write([small_tree(), big_tree(300), failed])
    build_site([tmp_path / "run"], tmp_path / "site")
    return tmp_path / "site"


def test_one_page_per_tree_with_every_node(site: Path):
    pages = sorted((site / "trees").glob("*.html"))
    assert [p.name for p in pages] == ["00000.html", "00001.html", "00002.html"]
    for page, tree in zip(pages, [small_tree(), big_tree(300)], strict=False):
        data = page_json(page)
        assert data["fields"] == list(NODE_FIELDS)
        assert len(data["nodes"]) == len(tree.nodes)
        assert [dict(zip(NODE_FIELDS, row, strict=True)) for row in data["nodes"]] == [n.to_dict() for n in tree.nodes]
        assert data["problem"] == tree.problem and data["answer"] == tree.answer
    small = page_json(pages[0])
    assert small["best"] == [0, 1, 3, 4] and small["best_kind"] == "correct"
    failed = page_json(pages[2])
    assert failed["error"] == "engine timed out"
    assert "search failed: engine timed out" in pages[2].read_text()
    # prev/next links chain the pages
    assert 'href="00001.html" rel="next"' in pages[0].read_text()
    assert 'href="00000.html" rel="prev"' in pages[1].read_text()
    assert json.loads((site / MARKER).read_text())["pages"] == 3


def test_index_has_a_row_per_tree(site: Path):
    index = (site / "index.html").read_text()
    rows = re.findall(r"<tr data-has-correct=\"(yes|no)\" data-failed=\"(yes|no)\"", index)
    assert rows[0] == ("yes", "no") and rows[2] == ("no", "yes") and len(rows) == 3
    assert 'href="trees/00000.html"' in index and "What is 2 + 3 * 4?" in index
    # correct / terminal leaves, and the best path's mean value after the root (0.7 + 0.9 + 1.0) / 3
    assert '<td data-sort="1">1 / 2</td>' in index
    assert f">{(0.7 + 0.9 + 1.0) / 3:.3f}<" in index


def test_the_site_refers_only_to_its_own_files(site: Path):
    files = [p for p in site.rglob("*") if p.is_file()]
    assert {p.relative_to(site).as_posix() for p in files} >= {
        "index.html", "assets/view.css", "assets/tree.js", "assets/index.js", MARKER}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?:|//[a-z]|@import|url\(", text, re.I), f"{path} names something outside the site"
        for ref in re.findall(r'(?:src|href)="([^"]*)"', text):
            target = (path.parent / ref).resolve()
            assert target.is_file() and site.resolve() in target.parents, f"{path}: {ref} is not a file of the site"


def test_text_cannot_break_out_of_the_page(tmp_path: Path):
    evil = 'x </script><script>alert(1)</script> <!-- & "q"'
    t = Tree.new(evil, answer="<b>")
    t.add(0, "step", evil)
    write_site([(t, "here")], tmp_path / "site")
    page = (tmp_path / "site" / "trees" / "00000.html").read_text()
    assert "<script>alert(1)" not in page and "<!--" not in page
    data = page_json(tmp_path / "site" / "trees" / "00000.html")
    assert data["problem"] == evil and data["nodes"][1][NODE_FIELDS.index("text")] == evil
    assert "<script>alert(1)" not in (tmp_path / "site" / "index.html").read_text()


def test_best_path_falls_back_to_the_highest_value_path():
    t = Tree.new("Simplify 6/8.")
    t.add(0, "step", "6/8 = 3/4.", value=0.9, visits=3)
    t.add(0, "step", "6/8 = 2/3.", value=0.1)
    t.add(2, "step", "so 2/3", value=1.0)
    t.add(1, "step", "so 3/4", value=0.5)
    t.add(1, "step", "hence 3/4", value=0.6)
    assert best_path(t) == ([0, 1, 5], "value")
    assert best_path(Tree.new("nothing")) == ([], "")


def test_best_path_without_gold_is_the_weighted_votes_answer():
    t = Tree.new("What is 2 + 3?")  # no gold: nothing is graded
    t.add(0, "step", "2 + 3 = 6.", value=0.9, visits=1)
    t.add(1, "step", "\\boxed{6}", terminal=True, value=0.9, q_estimate=0.9, visits=1)
    t.add(0, "step", "2 + 3 = 5.", value=0.4, visits=3)
    t.add(3, "step", "\\boxed{5}", terminal=True, value=0.4, q_estimate=0.4, visits=3)
    # A descent on value would take the 0.9 path; three rollouts at 0.4 outweigh it.
    assert best_path(t) == ([0, 3, 4], "vote")
    t.answer = "5"  # graded: the correct path; graded and never solved: the descent on value
    t.nodes[4].correct, t.nodes[2].correct = True, False
    assert best_path(t) == ([0, 3, 4], "correct")
    t.nodes[4].correct = False
    assert best_path(t) == ([0, 1, 2], "value")


def test_the_vote_counts_one_answer_written_two_ways_as_one():
    t = Tree.new("What is 2 + 3?")
    t.add(0, "step", "2 + 3 = 6.", value=0.8, visits=1)
    t.add(1, "step", "\\boxed{6}", terminal=True, value=0.8, q_estimate=0.8, visits=2)
    t.add(0, "step", "2 + 3 = 5.", value=0.5, visits=1)
    t.add(3, "step", "\\boxed{5}", terminal=True, value=0.5, q_estimate=0.5, visits=2)
    t.add(0, "step", "Two plus three is five.", value=0.5, visits=1)
    t.add(5, "step", "The answer is $5.0$.", terminal=True, value=0.5, q_estimate=0.5, visits=2)
    # 6 weighs 1.6; 5 weighs 1.0 and 1.0 as "5" and "5.0": counted as one answer, 2.0.
    assert best_path(t) == ([0, 3, 4], "vote")


def test_answer_key_writes_one_answer_one_way():
    from cotgen.answers import answer_key

    same = [["72", "72.0", "+72", "72.", " 72 ", "$72$", "\\text{72}"], ["1000", "1,000", "1{,}000", "1,000.00"],
            ["0.5", ".5", "0.50"], ["-3", "-3.0", "-03"], ["0", "-0", "-0.0", "+.0"], ["(1,2)", "\\left( 1, 2 \\right)"]]
    for forms in same:
        assert len({answer_key(f) for f in forms}) == 1, forms
    keys = {answer_key(f[0]) for f in same}
    assert len(keys) == len(same)
    assert answer_key("1,00") != answer_key("100") and answer_key("-3") != answer_key("3")


def test_best_correct_path_keeps_critics_so_it_is_unbroken():
    t = Tree.new("What is 1 + 1?", answer="2")
    t.add(0, "step", "1 + 1 = 3.", value=0.1)
    t.add(1, "critic", "No.")
    t.add(2, "refine", "1 + 1 = 2.", value=0.9)
    t.add(3, "conclusion", "\\boxed{2}", terminal=True, correct=True, value=1.0)
    assert best_path(t) == ([0, 1, 2, 3, 4], "correct")


def test_a_tree_that_cannot_be_drawn_is_skipped_with_its_reason(tmp_path: Path):
    broken = Tree.new("p")
    broken.nodes.append(Node(id=1, parent=9, kind="step", text="orphan"))
    summary = write_site([(broken, "f: row 0"), (small_tree(), "f: row 1")], tmp_path / "site")
    assert summary.pages == 1 and summary.rows_read == 2
    assert summary.skipped == {"cannot be drawn: node N: parent N does not exist before it": 1}
    assert summary.examples[next(iter(summary.skipped))] == "f: row 0: cannot be drawn: node 1: parent 9 does not exist before it"
    assert "skipped rows: 1 × cannot be drawn" in (tmp_path / "site" / "index.html").read_text()


def test_out_folder_rules(tmp_path: Path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not made by cotgen view"):
        write_site([(small_tree(), "x")], tmp_path / "other")
    assert (tmp_path / "other" / "mine.txt").read_text() == "keep me"
    write_site([(small_tree(), "x"), (small_tree(), "y")], tmp_path / "site")
    with pytest.raises(UsageError, match="--overwrite"):
        write_site([(small_tree(), "x")], tmp_path / "site")
    write_site([(small_tree(), "x")], tmp_path / "site", overwrite=True)
    assert [p.name for p in (tmp_path / "site" / "trees").iterdir()] == ["00000.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "site"]  # no temporary left


def test_a_failed_build_leaves_no_site(tmp_path: Path):
    def trees():
        yield small_tree(), "x"
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_site(trees(), tmp_path / "site")
    assert list(tmp_path.iterdir()) == []


def test_non_finite_numbers_keep_the_page_parseable(tmp_path: Path):
    t = small_tree()
    t.nodes[1].logprob = float("-inf")
    t.nodes[2].q_estimate = float("nan")
    t.config = {"temperature": float("inf")}
    write_site([(t, "x")], tmp_path / "site")
    text = (tmp_path / "site" / "trees" / "00000.html").read_text()
    data = json.loads(re.search(r'type="application/json">(.*?)</script>', text, re.S).group(1),
                      parse_constant=lambda c: pytest.fail(f"{c} in the page's JSON"))
    assert data["nodes"][1][NODE_FIELDS.index("logprob")] == "-inf"
    assert data["nodes"][2][NODE_FIELDS.index("q_estimate")] == "nan"
    assert data["config"] == {"temperature": "inf"}


def test_skip_reasons_of_different_trees_count_as_one_as_export_counts_them():
    from cotgen.export import ExportSummary
    from cotgen.view.site import SiteSummary

    reasons = ["tree 0a1b2c: a node's rating is 'meh'", "tree ffee99: a node's rating is 'meh'", "  \n"]
    site, export = SiteSummary(out="site"), ExportSummary(format="sft", out="x", split="train")
    for n, reason in enumerate(reasons):
        site.skip(reason, f"row {n}")
        export.skip(reason, f"row {n}")
    assert dict(site.skipped) == dict(export.skipped) == {"a node's rating is 'meh'": 2, "no reason given": 1}
