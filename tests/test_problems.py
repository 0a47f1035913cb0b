"""Problem sources: files, local dataset folders, builtin generators, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotgen.errors import DataError, RunError, UsageError
from cotgen.problems import Problem, load_problems
from cotgen.tree import Tree, tree_id


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _parquet(path: Path, columns: dict[str, list]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


ROWS = [
    {"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"},
    {"problem": "Halve 1.", "solution": "Half of 1 is $\\boxed{\\frac{1}{2}}$."},
    {"prompt": "Big number?", "final_answer": "#### 1,234,567"},
    {"instruction": "No gold here."},
    {"query": "A number answer", "answer": 18},
]


def test_jsonl_fields_and_answer_forms_are_understood(tmp_path):
    ps = load_problems(str(_jsonl(tmp_path / "p.jsonl", ROWS)))
    assert [p.answer for p in ps] == ["4", "\\frac{1}{2}", "1234567", None, "18"]
    assert [p.question for p in ps][:2] == ["What is 2 + 2?", "Halve 1."]
    assert ps.skipped == [] and ps.source == "p.jsonl"
    assert ps.problems[0].source == "p.jsonl#1"


def test_problem_id_is_the_tree_id(tmp_path):
    p = load_problems(str(_jsonl(tmp_path / "p.jsonl", ROWS))).problems[0]
    assert p.id == tree_id(p.question, p.answer) == Tree.new(p.question, p.answer).id
    assert isinstance(p, Problem)


def test_math_answer_field_wins_over_the_solution(tmp_path):
    row = {"problem": "q", "solution": "... \\boxed{2} ... \\boxed{3}", "answer": "3"}
    assert load_problems(str(_jsonl(tmp_path / "m.jsonl", [row]))).problems[0].answer == "3"
    del row["answer"]
    assert load_problems(str(_jsonl(tmp_path / "m2.jsonl", [row]))).problems[0].answer == "3"


def test_a_solution_without_a_final_answer_gives_no_gold(tmp_path):
    row = {"problem": "q", "solution": "We reason for a while and stop."}
    assert load_problems(str(_jsonl(tmp_path / "s.jsonl", [row]))).problems[0].answer is None


def test_explicit_fields(tmp_path):
    rows = [{"text": "Q1", "label": "7", "question": "decoy"}, {"text": "Q2"}]
    ps = load_problems(
        str(_jsonl(tmp_path / "f.jsonl", rows)), question_field="text", answer_field="label"
    )
    assert [(p.question, p.answer) for p in ps] == [("Q1", "7")]
    assert ps.skipped == [f"{tmp_path / 'f.jsonl'}: line 2: no answer field 'label'"]


def test_rows_without_a_question_are_reported_by_line_and_counted(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"question": "ok?", "answer": "1"}\n\n{"answer": "2"}\n{"question": "  "}\n[1, 2]\n{"question": 5}\n',
        encoding="utf-8",
    )
    ps = load_problems(str(path))
    assert len(ps) == 1
    assert ps.skipped == [
        f"{path}: line 3: no question field (tried question, problem, prompt, instruction, query, input)",
        f"{path}: line 4: question field 'question' is empty",
        f"{path}: line 5: a JSON list, expected an object",
        f"{path}: line 6: question field 'question' holds a int, not text",
    ]
    assert ps.reasons == {"no question": 2, "not an object": 1, "bad question": 1}


def test_duplicates_are_kept_once(tmp_path):
    rows = [
        {"question": "q", "answer": "1"},
        {"question": "q", "answer": "1"},
        {"question": "q", "answer": "2"},
    ]
    ps = load_problems(str(_jsonl(tmp_path / "d.jsonl", rows)))
    assert [p.answer for p in ps] == ["1", "2"]
    assert len(ps.skipped) == 1 and "line 2: duplicate of line 1" in ps.skipped[0]
    assert ps.reasons == {"duplicate": 1}


def test_skip_and_limit_count_kept_problems(tmp_path):
    rows = [{"question": f"q{i}"} for i in range(10)]
    rows.insert(3, {"nothing": 1})
    path = str(_jsonl(tmp_path / "n.jsonl", rows))
    assert [p.question for p in load_problems(path, skip=2, limit=3)] == ["q2", "q3", "q4"]
    assert len(load_problems(path, limit=0)) == 0
    assert len(load_problems(path, skip=50)) == 0
    with pytest.raises(UsageError, match="--limit"):
        load_problems(path, limit=-1)


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "a"}\n{"question": "b",\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2: not valid JSON \(char \d+"):
        load_problems(str(path))


def test_bad_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"question": "fine"}\n{"question": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"latin1\.jsonl: line 2: invalid UTF-8 at byte \d+ of the line \(0xe9"):
        load_problems(str(path))
    json_path = tmp_path / "latin1.json"
    json_path.write_bytes(b'[\n{"question": "fine"},\n{"question": "caf\xe9"}\n]')
    with pytest.raises(DataError, match=r"latin1\.json: line 3: invalid UTF-8"):
        load_problems(str(json_path))


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.json"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("\n" if name.endswith("l") else "", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{name}: (no usable problems|empty file)"):
        load_problems(str(path))


def test_a_file_where_no_row_has_a_question(tmp_path):
    path = _jsonl(tmp_path / "none.jsonl", [{"a": 1}, {"b": 2}])
    with pytest.raises(
        DataError,
        match=r"none\.jsonl: no usable problems; 2 rows dropped, first: .*line 1: no question field",
    ):
        load_problems(str(path))


def test_json_array_object_and_jsonl_in_disguise(tmp_path):
    arr = tmp_path / "a.json"
    arr.write_text(json.dumps(ROWS[:2]), encoding="utf-8")
    assert len(load_problems(str(arr))) == 2
    obj = tmp_path / "o.json"
    obj.write_text(json.dumps({"data": ROWS[:3]}), encoding="utf-8")
    assert [p.answer for p in load_problems(str(obj))] == ["4", "\\frac{1}{2}", "1234567"]
    lines = _jsonl(tmp_path / "l.json", ROWS[:2])
    assert load_problems(str(lines)).problems[1].source == "l.json#2"
    wrong = tmp_path / "w.json"
    wrong.write_text('{"rows_here": 3}', encoding="utf-8")
    with pytest.raises(DataError, match=r"w\.json is a JSON object, expected an array"):
        load_problems(str(wrong))
    broken = tmp_path / "b.json"
    broken.write_text('[{"question": "a"},\n {"question": ]', encoding="utf-8")
    with pytest.raises(DataError, match=r"b\.json: not valid JSON \(line 2, column \d+"):
        load_problems(str(broken))


def test_parquet(tmp_path):
    path = _parquet(
        tmp_path / "p.parquet", {"problem": ["a", "b", None], "answer": ["#### 1,000", None, "3"]}
    )
    ps = load_problems(str(path))
    assert [(p.question, p.answer) for p in ps] == [("a", "1000"), ("b", None)]
    assert ps.skipped == [f"{path}: row 2: question field 'problem' holds a NoneType, not text"]


def test_parquet_with_other_columns_names_them(tmp_path):
    path = _parquet(tmp_path / "o.parquet", {"text": ["a"], "label": ["1"]})
    with pytest.raises(
        DataError,
        match=r"o\.parquet: no question column \(tried question, .*the columns are text, label\)",
    ):
        load_problems(str(path))
    ps = load_problems(str(path), question_field="text", answer_field="label")
    assert [(p.question, p.answer) for p in ps] == [("a", "1")]


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("question,answer\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"fake\.parquet: not a readable Parquet file"):
        load_problems(str(path))


def test_missing_file_and_unknown_type_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such problem file"):
        load_problems(str(tmp_path / "nope.jsonl"))
    csv = tmp_path / "p.csv"
    csv.write_text("question\n", encoding="utf-8")
    with pytest.raises(UsageError, match="unknown problem file type '.csv'"):
        load_problems(str(csv))


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    """An empty datasets cache, so tests neither read nor fill the user's."""
    import datasets

    cache = tmp_path / "datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def test_local_dataset_folder(tmp_path, datasets_cache):
    folder = tmp_path / "myset"
    (folder / "data").mkdir(parents=True)
    _parquet(
        folder / "data" / "test-00000-of-00001.parquet",
        {"question": ["x?", "y?"], "answer": ["1", "#### 2"]},
    )
    ps = load_problems(str(folder), split="test")
    assert [(p.question, p.answer) for p in ps] == [("x?", "1"), ("y?", "2")]
    assert ps.source == "myset/test" and ps.problems[1].source == "myset/test#1"
    with pytest.raises(UsageError, match="--split"):
        load_problems(str(folder), split="train")
    assert any(datasets_cache.iterdir())  # the fixture's cache was the one used


@pytest.mark.parametrize(
    "spec", ["gsm8k", "openai/gsm8k", "math500", "someone/not-cached-anywhere"]
)
def test_uncached_hub_dataset_is_one_clear_error(spec, datasets_cache):
    with pytest.raises(RunError, match="is not in the local cache and the Hub is offline"):
        load_problems(spec)


def test_builtin_generators_are_seeded_exact_and_bounded():
    a = load_problems("builtin:arith", seed=3)
    assert len(a) == 100  # the default bound of an infinite generator
    assert a.problems == load_problems("builtin:arith", seed=3).problems
    assert a.problems != load_problems("builtin:arith", seed=4).problems
    assert all(p.answer is not None and int(p.answer) >= 0 for p in a)
    assert len({p.id for p in a}) == 100
    assert load_problems("builtin:arith", seed=3, skip=10, limit=5).problems == a.problems[10:15]


def test_builtin_arith_answers_are_right():
    import re

    for p in load_problems("builtin:arith", limit=300, seed=0):
        q = p.question
        n = [int(x) for x in re.findall(r"\d+", q)]
        if q.startswith("Start with"):
            expected = n[0] * n[1] + n[2] - n[3]
        elif " buys " in q:
            expected = n[0] + n[1] * n[2] - n[3]
        elif " collects " in q:
            expected = 2 * n[0] * n[1] + n[2]
        else:
            expected = (n[0] * n[1] - n[2]) // n[3]
            assert (n[0] * n[1] - n[2]) % n[3] == 0, q
        assert p.answer == str(expected), q


def test_builtin_letters_answers_are_right():
    import re

    ps = load_problems("builtin:letters", limit=200, seed=1)
    assert len(ps) == 200
    for p in ps:
        letter, phrase = re.fullmatch(
            r'How many times does the letter "(.)" appear in "(.+)"\?', p.question
        ).groups()
        assert p.answer == str(phrase.count(letter))
    assert any(p.answer == "0" for p in ps) and any(int(p.answer) >= 3 for p in ps)


def test_unknown_builtin():
    with pytest.raises(UsageError, match="builtin:arith, builtin:letters"):
        load_problems("builtin:chess")
