"""`cotgen stats --plot`: the histogram counts, and the picture written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from view_sample_trees import big_tree, small_tree

from cotgen.io.writers import TreeShardWriter
from cotgen.treestats import TreeHistograms, _two_digits


def test_histograms_of_a_known_tree():
    hist = TreeHistograms()
    hist.add(small_tree())
    assert hist.tree_depth == {3: 1}
    assert hist.branching == {2: 3, 1: 1}  # nodes 0, 1 and 2 have two children, node 3 one
    assert hist.terminal_by_depth == {3: 1, 2: 1} and hist.correct_by_depth == {3: 1, 2: 0}
    assert hist.correct_leaf_values == {19: 1} and hist.wrong_leaf_values == {0: 1}  # values 1.0 and 0.0
    assert hist.tokens_per_tree == {68: 1}  # no run totals: the nodes' tokens
    assert json.loads(json.dumps(hist.as_dict()))["branching"] == {"1": 1, "2": 3}


@pytest.mark.parametrize("n, rounded", [(0, 0), (7, 7), (99, 99), (1234, 1200), (98765, 98000)])
def test_token_totals_keep_two_digits(n, rounded):
    assert _two_digits(n) == rounded


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    TreeShardWriter(tmp_path / "run").write([small_tree(), *(big_tree(60, seed=s) for s in range(5))])
    return tmp_path / "run"


@pytest.mark.parametrize("name, magic", [("stats.png", b"\x89PNG"), ("stats.svg", b"<?xml")])
def test_stats_plot_writes_the_picture(cli, run_dir: Path, tmp_path: Path, name: str, magic: bytes):
    r = cli("stats", run_dir, "--plot", tmp_path / name, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["trees"] == 6
    assert (tmp_path / name).read_bytes().startswith(magic)
    assert f"wrote {tmp_path / name}" in r.err


def test_the_png_is_not_blank(cli, run_dir: Path, tmp_path: Path):
    from PIL import Image

    assert cli("stats", run_dir, "--plot", tmp_path / "s.png").code == 0
    colours = Image.open(tmp_path / "s.png").convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 100


def test_a_file_type_matplotlib_cannot_write_is_refused_first(cli, tmp_path: Path):
    r = cli("stats", tmp_path / "missing-run", "--plot", tmp_path / "stats.txt")
    assert r.code == 2 and ".png, .svg or .pdf" in r.err


def test_without_matplotlib_the_message_names_the_extra(cli, run_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    r = cli("stats", run_dir, "--plot", tmp_path / "s.png")
    assert r.code == 2 and "pip install 'cotgen[plot]'" in r.err
    assert cli("stats", run_dir).code == 0  # plain stats never needs it
