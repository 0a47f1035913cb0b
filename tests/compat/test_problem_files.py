"""Problem loaders on the real GSM8K and MATH500 files in ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

from cotgen.problems import load_problems
from cotgen.tree import tree_id
from cotgen.verify import grade


def test_gsm8k_test_file(shared: Path):
    path = shared / "data" / "gsm8k_test.jsonl"
    ps = load_problems(str(path))
    assert len(ps) == 1319 and ps.skipped == []
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    golds = [r["answer"].rsplit("####", 1)[1].strip() for r in raw]
    with_commas = [i for i, g in enumerate(golds) if "," in g]
    assert len(with_commas) == 14
    for i in with_commas:
        assert ps.problems[i].answer == golds[i].replace(",", "")
    assert all(p.answer.lstrip("-").replace(".", "", 1).isdigit() for p in ps)
    assert [p.question for p in ps] == [r["question"] for r in raw]
    assert ps.problems[0].answer == "18" and ps.problems[0].source == "gsm8k_test.jsonl#1"
    assert len({p.id for p in ps}) == 1319
    assert all(p.id == tree_id(p.question, p.answer) for p in ps)


def test_math500_test_file(shared: Path):
    path = shared / "data" / "math500_test.jsonl"
    ps = load_problems(str(path))
    assert len(ps) == 500 and ps.skipped == []
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    # The `answer` field wins over the solution's box, byte for byte except for the one
    # number written with a thousands comma (row 343, `58,500`).
    changed = {
        i: (p.answer, r["answer"])
        for i, (p, r) in enumerate(zip(ps, raw, strict=True))
        if p.answer != r["answer"]
    }
    assert changed == {343: ("58500", "58,500")}
    assert [p.question for p in ps] == [r["problem"] for r in raw]


def test_math500_without_answer_field_takes_the_solutions_last_box(shared: Path, tmp_path):
    raw = [
        json.loads(line)
        for line in (shared / "data" / "math500_test.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    stripped = tmp_path / "math500_no_answer.jsonl"
    stripped.write_text(
        "".join(
            json.dumps({"problem": r["problem"], "solution": r["solution"]}) + "\n" for r in raw
        ),
        encoding="utf-8",
    )
    ps = load_problems(str(stripped))
    assert len(ps) == 500
    # The box may be written differently from the `answer` field; the grader agrees on all.
    disagree = [
        i
        for i, (p, r) in enumerate(zip(ps, raw, strict=True))
        if grade(f"\\boxed{{{p.answer}}}", r["answer"]).correct is not True
    ]
    assert disagree == []


def test_same_problems_from_parquet_and_json(shared: Path, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = shared / "data" / "gsm8k_test.jsonl"
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    pq.write_table(pa.Table.from_pylist(raw), tmp_path / "gsm8k.parquet", row_group_size=300)
    (tmp_path / "gsm8k.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    want = [(p.id, p.question, p.answer) for p in load_problems(str(path))]
    for name in ("gsm8k.parquet", "gsm8k.json"):
        got = [(p.id, p.question, p.answer) for p in load_problems(str(tmp_path / name))]
        assert got == want, name


def test_limit_and_skip_on_gsm8k(shared: Path):
    path = str(shared / "data" / "gsm8k_test.jsonl")
    full = load_problems(path).problems
    assert load_problems(path, skip=1300, limit=50).problems == full[1300:]
