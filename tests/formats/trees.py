"""Hand-built trees with known structure, shared by the sft, prm and dpo tests, and a datasets round trip."""

from __future__ import annotations

from cotgen.tree import Tree


def order_of_operations() -> Tree:
    """A graded tree with a correct path, a refuted branch, a critic and its refine.

        0 problem  What is 2 + 3 * 4?                       (answer 14)
        ├─ 1 step        First, 3 * 4 = 12.                  mc 1.0
        │  ├─ 3 step     Then 2 + 12 = 14.                   mc 1.0
        │  │  └─ 4 conclusion  ... \\boxed{14}.  terminal, correct
        │  └─ 10 step    Then 12 - 2 = 10.   leaf, not terminal, value 0.2 (no grade)
        └─ 2 step        First, 2 + 3 = 5.                   mc 0.0 (its critic's subtree is not its own)
           ├─ 5 step     Then 5 * 4 = 20.                    mc 0.0
           │  └─ 6 conclusion  ... \\boxed{20}.  terminal, wrong
           └─ 7 critic   Multiplication comes first ...
              └─ 8 refine  First, 3 * 4 = 12, and 2 + 12 = 14.   mc 1.0
                 └─ 9 conclusion  ... \\boxed{14}.  terminal, correct

    Node values are what a search could back up; they deliberately differ from the
    ground-truth Monte Carlo values above so tests can tell which one a format reads.
    """
    t = Tree.new("What is 2 + 3 * 4?", answer="14", source="hand", model="none")
    t.add(0, "step", "First, 3 * 4 = 12.", value=0.7, visits=4, rating="positive")  # 1
    t.add(0, "step", "First, 2 + 3 = 5.", value=0.6, visits=4, rating="negative")  # 2
    t.add(1, "step", " Then 2 + 12 = 14.\n", value=0.9, visits=2, rating="positive")  # 3
    t.add(3, "conclusion", "So the answer is \\boxed{14}.", value=1.0, visits=1,
          rating="positive", terminal=True, correct=True)  # 4
    t.add(2, "step", "Then 5 * 4 = 20.", value=0.3, visits=1, rating="negative")  # 5
    t.add(5, "conclusion", "So the answer is \\boxed{20}.", value=0.0, visits=1,
          rating="negative", terminal=True, correct=False)  # 6
    t.add(2, "critic", "Multiplication comes before addition, so 2 + 3 is not the first step.")  # 7
    t.add(7, "refine", "First, 3 * 4 = 12, and 2 + 12 = 14.", value=0.95, visits=2,
          rating="positive")  # 8
    t.add(8, "conclusion", "The answer is \\boxed{14}.", value=0.9, visits=1,
          rating="positive", terminal=True, correct=True)  # 9
    t.add(1, "step", "Then 12 - 2 = 10.", value=0.2, visits=1, rating="negative")  # 10
    t.check()
    return t


def ungraded_three_way() -> Tree:
    """No ground truth: three sibling first steps whose only values are the search's.

        0 problem  Simplify 6/8.
        ├─ 1 step  6/8 = 3/4.          value 0.9
        ├─ 2 step  6/8 = 2/3.          value 0.1
        └─ 3 step  6/8 = 0.75 = 3/4.   value 0.5
           └─ 4 step  So 6/8 = \\boxed{3/4}.  terminal, ungraded, value 0.5
    """
    t = Tree.new("Simplify 6/8.", answer=None)
    t.add(0, "step", "6/8 = 3/4.", value=0.9, visits=3)
    t.add(0, "step", "6/8 = 2/3.", value=0.1, visits=1)
    t.add(0, "step", "6/8 = 0.75 = 3/4.", value=0.5, visits=2)
    t.add(3, "step", "So 6/8 = \\boxed{3/4}.", value=0.5, visits=1, terminal=True)
    t.check()
    return t


def all_wrong() -> Tree:
    """Graded, but no terminal leaf is correct: sft has nothing to teach."""
    t = Tree.new("What is 1 + 1?", answer="2")
    t.add(0, "step", "1 + 1 = 3.", value=0.4, visits=2)
    t.add(1, "conclusion", "The answer is \\boxed{3}.", value=0.0, visits=1,
          terminal=True, correct=False)
    t.check()
    return t


def root_only() -> Tree:
    """The search made nothing: no path, no pair."""
    return Tree.new("What is 5 - 5?", answer="0")


def load_with_datasets(rows: list[dict], schema, tmp_path, monkeypatch) -> list[dict]:
    """Write `rows` as one Parquet shard and read it back the way users do, with
    datasets.load_dataset("parquet", ...), its cache inside tmp_path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    from datasets import load_dataset

    dataset = load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache"))
    return dataset.to_list()
