"""Dedupe: planted exact, near and look-alike rows; determinism; --on problem; layouts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cotgen.dedupe import DedupeConfig, dedupe, lsh_bands
from cotgen.errors import UsageError
from cotgen.io.layout import read_manifest
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree

WORDS = [f"w{i}" for i in range(3000)]


def words(seed: int, n: int = 300) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(WORDS) for _ in range(n)]


def near(text: list[str], changes: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = list(text)
    for pos in rng.sample(range(len(out)), changes):
        out[pos] = "changed" + str(pos)
    return out


def planted_texts() -> tuple[list[str], dict[str, set[int]]]:
    """Rows with known fates: `drop` must go, everything else must stay."""
    base = [words(s) for s in range(20)]
    rows = [" ".join(w) for w in base]
    drop: set[int] = set()
    # exact copies, with different whitespace (normalization collapses it)
    for s in (0, 1):
        rows.append("  " + "\n".join(base[s]) + "\t")
        drop.add(len(rows) - 1)
    # near copies: 3 words of 300 changed
    for s in (2, 3, 4):
        rows.append(" ".join(near(base[s], 3, seed=s)))
        drop.add(len(rows) - 1)
    # look-alikes: the same 60% prefix as row 5, a different rest
    for s in range(3):
        rows.append(" ".join(base[5][:180] + words(100 + s, 120)))
    return rows, {"drop": drop}


def write_text_parquet(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": texts}), path)
    return path


def kept_texts(folder: Path) -> list[str]:
    return [t for f in sorted(folder.glob("*.parquet")) for t in pq.read_table(f).column("text").to_pylist()]


def test_planted_duplicates_go_and_lookalikes_stay(tmp_path):
    rows, fate = planted_texts()
    src = write_text_parquet(tmp_path / "in" / "train-00000-of-00001.parquet", rows)
    report = dedupe([src], tmp_path / "out")
    kept = kept_texts(tmp_path / "out")
    expected = [r for i, r in enumerate(rows) if i not in fate["drop"]]
    assert kept == expected
    assert report.dropped == {"exact": 2, "near": 3}
    assert report.rows == len(rows) and report.kept == len(expected)
    saved = json.loads((tmp_path / "out" / "dedupe.json").read_text())
    kept_rows = sorted(c["kept"]["row"] for c in saved["clusters"])
    assert kept_rows == [0, 1, 2, 3, 4]
    reasons = sorted(d["reason"] for c in saved["clusters"] for d in c["dropped"])
    assert reasons == ["exact", "exact", "near", "near", "near"]


def test_unicode_normalization_makes_exact_duplicates(tmp_path):
    a = "Ｆｕｌｌ width text " + " ".join(words(7, 20))
    b = "Full\u00a0width   text " + " ".join(words(7, 20))
    src = write_text_parquet(tmp_path / "in" / "train-00000-of-00001.parquet", [a, b, b.upper()])
    report = dedupe([src], tmp_path / "out")
    assert report.dropped["exact"] == 1  # case is kept: the upper-case row stays
    assert kept_texts(tmp_path / "out") == [a, b.upper()]


def test_output_is_byte_for_byte_deterministic(tmp_path):
    rows, _ = planted_texts()
    src = write_text_parquet(tmp_path / "in" / "train-00000-of-00001.parquet", rows)
    dedupe([src], tmp_path / "a")
    dedupe([src], tmp_path / "b")
    name = "train-00000-of-00001.parquet"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    reports = [json.loads((tmp_path / d / "dedupe.json").read_text()) for d in ("a", "b")]
    assert reports[0].pop("out") != reports[1].pop("out")
    assert reports[0] == reports[1]


def test_exports_keep_their_shard_layout(tmp_path):
    rows, fate = planted_texts()
    src = tmp_path / "in"
    write_text_parquet(src / "train-00000-of-00002.parquet", rows[:15])
    write_text_parquet(src / "train-00001-of-00002.parquet", rows[15:])
    dedupe([src], tmp_path / "out", DedupeConfig(batch_rows=4))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["dedupe.json", "train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    assert kept_texts(tmp_path / "out") == [r for i, r in enumerate(rows) if i not in fate["drop"]]


def test_marco_json_stays_json(tmp_path):
    base = " ".join(words(1))
    records = [
        {"instruction": "q1", "response": f"<Thought>\n{base}\n</Thought>\n<Output>\n1\n</Output>"},
        {"instruction": "q1", "response": f"<Thought>\n{base}\n</Thought>\n<Output>\n1\n</Output>"},
        {"instruction": "q2", "response": f"<Thought>\n{' '.join(words(2))}\n</Thought>\n<Output>\n2\n</Output>"},
    ]
    src = tmp_path / "in" / "train-00000-of-00001.json"
    src.parent.mkdir()
    src.write_text(json.dumps(records, ensure_ascii=False, indent=4) + "\n", encoding="utf-8")
    dedupe([src], tmp_path / "out")
    out = tmp_path / "out" / "train-00000-of-00001.json"
    assert out.read_text(encoding="utf-8") == json.dumps([records[0], records[2]], ensure_ascii=False, indent=4) + "\n"


def make_tree(problem: str, correct: int, steps: int, seed: int) -> Tree:
    tree = Tree.new(problem, answer="7", model=f"m{seed}")
    parent = 0
    for i in range(steps):
        parent = tree.add(parent, "step", " ".join(words(seed * 100 + i, 40))).id
    for i in range(correct + 1):
        tree.add(parent, "conclusion", f"so \\boxed{{{7 if i < correct else 8}}} {seed}", terminal=True, correct=i < correct)
    return tree


def test_on_problem_keeps_the_tree_with_most_correct_leaves(tmp_path):
    problem = "Alice has " + " ".join(words(9, 30)) + " how many apples?"
    other = "Bob has " + " ".join(words(9, 30)[:18]) + " " + " ".join(words(10, 12)) + " how many pears?"
    run_a = TreeShardWriter(tmp_path / "run-a", settings={"model": "tiny"})
    run_a.write([make_tree(problem, 1, 3, seed=1), make_tree(other, 0, 2, seed=2)])
    run_b = TreeShardWriter(tmp_path / "run-b")
    best = make_tree(problem, 2, 2, seed=3)
    run_b.write([best])
    run_b.write([make_tree(problem, 2, 1, seed=4)])  # as many correct leaves, fewer nodes
    report = dedupe([tmp_path / "run-a", tmp_path / "run-b"], tmp_path / "out", DedupeConfig(on="problem"))
    out = tmp_path / "out"
    shards = sorted((out / "trees").glob("part-*.parquet"))
    assert [p.name for p in shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    kept = [r for p in shards for r in pq.read_table(p).to_pylist()]
    assert [(r["problem"], r["model"]) for r in kept] == [(other, "m2"), (problem, "m3")]
    assert report.dropped == {"exact": 2, "near": 0}
    manifest = read_manifest(out)
    assert manifest["settings"] == {"model": "tiny"}
    assert manifest["counts"]["trees"] == 2
    assert [s["rows"] for s in manifest["shards"]] == [1, 1, 0]
    assert manifest["dedupe"]["settings"]["on"] == "problem"


def test_on_text_over_trees_drops_copied_trees(tmp_path):
    run = TreeShardWriter(tmp_path / "run")
    a = make_tree("p1", 1, 3, seed=1)
    b = make_tree("p2", 1, 3, seed=2)
    run.write([a, b, make_tree("p1", 1, 3, seed=1)])
    report = dedupe([tmp_path / "run"], tmp_path / "out")
    assert report.dropped["exact"] == 1
    assert report.clusters[0]["kept"]["id"] == a.id


def test_mixed_formats_and_bad_out_are_usage_errors(tmp_path):
    text = write_text_parquet(tmp_path / "x" / "train-00000-of-00001.parquet", ["a b c"])
    TreeShardWriter(tmp_path / "run").write([make_tree("p", 1, 1, seed=1)])
    with pytest.raises(UsageError, match="more than one format"):
        dedupe([text, tmp_path / "run"], tmp_path / "out")
    with pytest.raises(UsageError, match="holds the input"):
        dedupe([tmp_path / "x"], tmp_path / "x")
    with pytest.raises(ValueError, match="threshold must be"):
        DedupeConfig(threshold=1.5)


def test_lsh_layout_favours_recall():
    bands, rows = lsh_bands(0.85, 128)
    assert bands * rows <= 128
    assert 1 - (1 - 0.85**rows) ** bands >= 0.99


def test_exact_keys_follow_str_split_whitespace(tmp_path):
    """The vectorized word split agrees with Python's: NFKC, then str.split() whitespace
    (including \\x1c-\\x1f and Unicode spaces) separates words, other control bytes do not."""
    import unicodedata

    rng = random.Random(5)
    alphabet = ["a", "b", "é", " ", "  ", "\t", "\n", "\x1c", "\x1f", "\x01", "\x0e", "\u00a0", "\u2003", "\u3000"]
    rows = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(400)]
    src = write_text_parquet(tmp_path / "in" / "train-00000-of-00001.parquet", rows)
    report = dedupe([src], tmp_path / "out", DedupeConfig(batch_rows=37))
    distinct = {" ".join(unicodedata.normalize("NFKC", r).split()) for r in rows}
    assert report.dropped["exact"] == len(rows) - len(distinct)


def test_signatures_read_back_in_small_chunks_give_the_same_result(tmp_path, monkeypatch):
    """Pass 1 keeps the signatures on disk and reads back only the rows that share a band,
    a chunk at a time: chunks far smaller than the input decide exactly as one chunk does."""
    from cotgen import dedupe as dedupe_module

    rows, fate = planted_texts()
    src = write_text_parquet(tmp_path / "in" / "train-00000-of-00001.parquet", rows)
    monkeypatch.setattr(dedupe_module._SignatureFile, "READ_ROWS", 3)
    report = dedupe([src], tmp_path / "out", DedupeConfig(batch_rows=5))
    assert kept_texts(tmp_path / "out") == [r for i, r in enumerate(rows) if i not in fate["drop"]]
    assert report.dropped == {"exact": 2, "near": 3}
    assert not list((tmp_path / "out").glob(".signatures*"))
