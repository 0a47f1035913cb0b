"""The README's recipe past one machine (issue 20 item 5): a cotgen export read by datatrove's
MinHash pipeline (scripts/datatrove_minhash.py, local executor), near copies removed, the kept
rows written back in the export's own columns. datatrove is no cotgen dependency: the test
runs where it is installed and is skipped elsewhere."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("datatrove")

from cotgen.export import export  # noqa: E402
from cotgen.formats import make_format  # noqa: E402
from cotgen.io.writers import TreeShardWriter  # noqa: E402
from cotgen.tree import Tree  # noqa: E402
from cotgen.validate import validate_path  # noqa: E402

SCRIPT = Path(__file__).parents[1] / "scripts" / "datatrove_minhash.py"


def _recipe():
    spec = importlib.util.spec_from_file_location("datatrove_minhash", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _words(seed: int, n: int) -> str:
    # Letters only: datatrove's normalisation turns every digit into 0.
    rng = random.Random(seed)
    return " ".join("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=5)) for _ in range(n))


def _tree(problem: str, steps: list[str], answer: str) -> Tree:
    t = Tree.new(problem, answer, model="tiny", source="mine.jsonl#1")
    parent = 0
    for text in steps:
        parent = t.add(parent, "step", text, rating="positive", value=0.9, visits=1, tokens=10).id
    t.add(parent, "conclusion", f"The answer is \\boxed{{{answer}}}.", terminal=True, correct=True,
          rating="positive", value=1.0, visits=1, tokens=3)
    return t


@pytest.mark.parametrize("fmt", ["openlongcot", "sft"])
def test_datatrove_minhash_removes_near_copies_of_a_cotgen_export(tmp_path, fmt):
    originals = [_tree(f"Problem {i}: {_words(i, 30)}?", [_words(100 + i, 150), _words(200 + i, 150)], str(i))
                 for i in range(12)]
    # Near copies: one word of the problem changed (another tree id), the same long steps.
    copies = [_tree(t.problem.replace("Problem", "Question"), [n.text for n in t.nodes[1:-1]], t.answer)
              for t in originals[:4]]
    TreeShardWriter(tmp_path / "run").write(originals + copies)
    summary = export([tmp_path / "run"], make_format(fmt), tmp_path / "export")
    assert summary.rows_written == 16

    recipe = _recipe()
    assert recipe.detect_format(tmp_path / "export") == fmt
    for stage in recipe.pipeline(tmp_path / "export", tmp_path / "kept", tmp_path / "work"):
        stage.run()

    kept_files = sorted((tmp_path / "kept").glob("*.parquet"))
    kept = [r for f in kept_files for r in pq.read_table(f).to_pylist()]
    exported = pq.read_table(tmp_path / "export" / summary.shards[0]).to_pylist()
    # Each kept row is an exported row, column for column: of each near pair one is gone,
    # every other row stays.
    assert len(kept) == 12 and all(r in exported for r in kept)
    assert all((a in kept) != (b in kept) for a, b in zip(exported[:4], exported[12:], strict=True))
    assert all(r in kept for r in exported[4:12])
    assert all(validate_path(f).ok for f in kept_files)


def test_numbers_keep_problems_apart(tmp_path):
    """The recipe keeps digits (datatrove's default would read every number as 0)."""
    trees = [_tree(f"Compute {a} + {b} and give the sum as one whole number.", [f"We add {a} and {b} to get {a + b}."],
                   str(a + b)) for a, b in ((2, 3), (40, 17))]
    TreeShardWriter(tmp_path / "run").write(trees)
    export([tmp_path / "run"], make_format("openlongcot"), tmp_path / "export")
    recipe = _recipe()
    for stage in recipe.pipeline(tmp_path / "export", tmp_path / "kept", tmp_path / "work"):
        stage.run()
    assert sum(pq.read_metadata(f).num_rows for f in (tmp_path / "kept").glob("*.parquet")) == 2
