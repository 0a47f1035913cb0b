"""Hostile inputs, round 3, item 9 (issue 19): `dedupe` never merges different mathematics.

NFKC folds "10⁵" into "105", "x₂" into "x2" and "½" into "1⁄2": two problems that ask
different things became one exact key, and one was dropped. Superscripts, subscripts,
fractions and styled letters (bold v is a vector) now keep their identity, and two
problems whose gold answers differ are never duplicates, however alike their text.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cotgen.dedupe import DedupeConfig, dedupe
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree

# (one text, its look-alike after NFKC): different questions every time.
LOOKALIKES = [
    ("A grid of 10⁵ cells: how many corners?", "A grid of 105 cells: how many corners?"),
    ("Let x₂ = 3 and x = 5. Find x₂ + 1.", "Let x2 = 3 and x = 5. Find x2 + 1."),
    ("What is ½ of 30 apples?", "What is 1⁄2 of 30 apples?"),
    ("Find |𝐯| for the vector 𝐯 = (3, 4).", "Find |v| for the vector v = (3, 4)."),
    ("The area is 4㎡ or 42 square metres?", "The area is 4m2 or 42 square metres?"),
]


def _tree(problem: str, answer: str, seed: int, text: str | None = None) -> Tree:
    tree = Tree.new(problem, answer=answer, model="tiny")
    tree.add(0, "conclusion", text or f"so \\boxed{{{answer}}}", terminal=True, correct=True)
    return tree


@pytest.mark.parametrize(("a", "b"), LOOKALIKES)
def test_superscripts_fractions_subscripts_keep_problems_apart(tmp_path, a, b):
    src = tmp_path / "in" / "train-00000-of-00001.parquet"
    src.parent.mkdir()
    pq.write_table(pa.table({"text": [a, b]}), src)
    report = dedupe([src], tmp_path / "out")
    assert report.dropped == {"exact": 0, "near": 0}, f"{a!r} and {b!r} were merged"


def test_the_issue_case_on_problem_keeps_both_trees(tmp_path):
    run = TreeShardWriter(tmp_path / "run")
    run.write([_tree("How many cells has a grid of 10⁵ cells plus 5?", "100005", 1),
               _tree("How many cells has a grid of 105 cells plus 5?", "110", 2)])
    report = dedupe([tmp_path / "run"], tmp_path / "out", DedupeConfig(on="problem"))
    assert report.kept == 2 and report.dropped == {"exact": 0, "near": 0}


def test_different_gold_answers_are_never_duplicates(tmp_path):
    """The same problem text with two gold answers (a corrected dataset, two sources that
    disagree) is two problems: neither exact nor near dedupe may drop one."""
    text = "Alice has " + " ".join(f"w{i}" for i in range(60)) + " apples. How many?"
    near_text = text.replace("w10 ", "w10x ")
    run = TreeShardWriter(tmp_path / "run")
    run.write([_tree(text, "12", 1), _tree(text, "13", 2), _tree(near_text, "14", 3), _tree(text, "12", 4)])
    report = dedupe([tmp_path / "run"], tmp_path / "out", DedupeConfig(on="problem"))
    # Only the last tree, the same text with the same answer as the first, goes.
    assert report.kept == 3 and report.dropped == {"exact": 1, "near": 0}
    assert report.clusters[0]["kept"]["row"] == 0 and report.clusters[0]["dropped"][0]["row"] == 3


def test_compatibility_forms_of_the_same_text_still_merge(tmp_path):
    """What NFKC is for stays: full-width letters and non-breaking spaces are the same text."""
    a = "Ｆｉｎｄ the sum of 12 and 30 apples"
    b = "Find\u00a0the sum of 12 and 30 apples"
    src = tmp_path / "in" / "train-00000-of-00001.parquet"
    src.parent.mkdir()
    pq.write_table(pa.table({"text": [a, b]}), src)
    assert dedupe([src], tmp_path / "out").dropped["exact"] == 1


@pytest.mark.parametrize("on", ["text", "problem"])
def test_openlongcot_rows_with_different_answers_are_never_duplicates(tmp_path, on):
    """An OpenLongCoT export keeps each tree's gold answer in its `answer` column."""
    from cotgen.formats.openlongcot import to_openlongcot

    # The same text, byte for byte (a grader marked both right); only the gold answer differs.
    a = _tree("What is 6 times 7, in apples?", "42", 1, text="so \\boxed{42}")
    b = _tree("What is 6 times 7, in apples?", "43", 2, text="so \\boxed{42}")
    assert to_openlongcot(a) == to_openlongcot(b)
    rows = [{"text": to_openlongcot(t), "id": t.id, "problem": t.problem, "answer": t.answer} for t in (a, b, a)]
    rows[2]["id"] = "copy"
    src = tmp_path / "in" / "train-00000-of-00001.parquet"
    src.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), src)
    report = dedupe([src], tmp_path / "out", DedupeConfig(on=on))
    assert report.kept == 2 and report.dropped == {"exact": 1, "near": 0}  # only the true copy goes
