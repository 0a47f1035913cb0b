"""`cotgen inspect` and `cotgen stats` on runs, shards and OpenLongCoT files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree


def make_tree(i: int) -> Tree:
    t = Tree.new(f"What is {i} + {i}?", str(2 * i), model="tiny")
    s = t.add(0, "step", f"We add {i} and {i}.", rating="positive", value=0.75, visits=3)
    c = t.add(s.id, "critic", "Fine.")
    r = t.add(c.id, "refine", f"{i} + {i} = {2 * i}.", rating="positive", value=1.0, visits=1)
    t.add(r.id, "conclusion", f"\\boxed{{{2 * i}}}", terminal=True, correct=True, rating="positive", value=1.0, visits=1)
    w = t.add(0, "step", "Guess.", rating="negative", value=0.0, visits=1)
    t.add(w.id, "conclusion", "\\boxed{0}", terminal=True, correct=False, rating="negative", visits=1)
    t.stats.simulations = 4
    return t


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    TreeShardWriter(tmp_path / "run").write([make_tree(i) for i in range(3)])
    return tmp_path / "run"


def test_inspect_draws_every_node(cli, run_dir: Path):
    r = cli("inspect", run_dir, "--row", 1, "--width", 200)
    assert r.code == 0, r.err
    tree = make_tree(1)
    assert f"tree {tree.id}" in r.out
    for node in tree.nodes:
        assert f"#{node.id} {node.kind}" in r.out
    assert "We add 1 and 1." in r.out and "✓ correct" in r.out and "✗ wrong" in r.out
    assert "v=0.75" in r.out and "n=3" in r.out


def test_inspect_by_id_and_json(cli, run_dir: Path):
    tree = make_tree(2)
    r = cli("inspect", run_dir, "--id", tree.id, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["problem"] == tree.problem


@pytest.mark.parametrize(
    "args, code, message",
    [
        (("--row", "7"), 1, "no tree with row 7"),
        (("--id", "feed"), 1, "no tree with id feed"),
        (("--row", "0", "--id", "x"), 2, "not both"),
        (("--row", "-1"), 2, "--row must be >= 0"),
    ],
)
def test_inspect_bad_selection(cli, run_dir: Path, args, code, message):
    r = cli("inspect", run_dir, *args)
    assert r.code == code and message in r.err and "Traceback" not in r.err


def test_inspect_openlongcot_file(cli, shared: Path):
    r = cli("inspect", shared / "fixtures" / "openlongcot_seed_row.txt", "--width", 300)
    assert r.code == 0, r.err
    assert r.out.count("critic") == 2 and "Felix" in r.out


def test_stats_figures(cli, run_dir: Path):
    r = cli("stats", run_dir, "--json")
    assert r.code == 0, r.err
    s = json.loads(r.out)
    assert s["trees"] == 3 and s["nodes"] == 21
    assert s["nodes_per_tree_mean"] == 7 and s["depth_max"] == 4
    assert s["kind_share"]["critic"] == pytest.approx(3 / 21)
    assert s["rating_share"]["positive"] == pytest.approx(9 / 21)
    assert (s["terminal_leaves"], s["correct_leaves"], s["trees_with_correct_leaf"]) == (6, 3, 3)
    assert s["branching_mean"] == pytest.approx(6 / 5)  # root has 2 children, 4 others 1 each
    assert s["simulations"] == 12


def test_stats_table_and_missing_file(cli, run_dir: Path, tmp_path: Path):
    r = cli("stats", run_dir)
    assert r.code == 0 and "correct_leaf_rate" in r.err
    r = cli("stats", tmp_path / "nope.parquet")
    assert r.code == 2 and "no such file" in r.err
