"""The reader family and input discovery: one wording per bad file, whichever command reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotgen.errors import DataError, UsageError
from cotgen.io.inputs import expand_inputs, resolve_dataset_inputs
from cotgen.io.readers import JsonArrayReader, JsonlReader, open_reader
from cotgen.problems import load_problems
from cotgen.validate import validate_path


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_base_owns_skip_limit_and_bad_rows(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 0}\n{"a": 1}\nnot json\n{"a": 3}\n{"a": 4}\n')
    reader = open_reader(path)
    assert isinstance(reader, JsonlReader)
    bad = []
    rows = list(reader.rows(skip=1, limit=3, on_bad=lambda i, b: bad.append((i, b.message))))
    assert rows == [(1, {"a": 1}), (3, {"a": 3})]
    assert bad == [(2, "line 3: not valid JSON (char 0: Expecting value)")]
    with pytest.raises(DataError, match=r"r.jsonl: row 2: line 3: not valid JSON"):
        list(reader.rows())


def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path: Path):
    for name in ("b.jsonl", "b.json"):
        path = tmp_path / name
        body = json.dumps([{"question": "q?", "answer": "1"}]) if name.endswith("json") else '{"question": "q?", "answer": "1"}\n'
        path.write_bytes(b"\xef\xbb\xbf" + body.encode())
        assert [row for _, row in open_reader(path).rows()] == [{"question": "q?", "answer": "1"}]


def test_json_holding_one_object_per_line_is_read_as_jsonl(tmp_path: Path):
    path = _jsonl(tmp_path / "l.json", [{"question": "a"}, {"question": "b"}])
    reader = open_reader(path)
    assert isinstance(reader, JsonArrayReader)
    assert [reader.where(i) for i, _ in reader.rows()] == ["line 1", "line 2"]


def test_validate_and_problems_say_the_same_about_a_bad_line(tmp_path: Path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"question": "fine"}\n{"question": "caf\xe9"}\n')
    with pytest.raises(DataError) as info:
        load_problems(str(path))
    problems_says = str(info.value).removeprefix(f"{path}: ")
    report = validate_path(path, format="sft")
    validate_says = next(e["message"] for e in report.errors if e["row"] == 1)
    assert problems_says == validate_says == "line 2: invalid UTF-8 at byte 17 of the line (0xe9)"


def test_every_command_finds_the_same_files_in_an_export_folder(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "out"
    folder.mkdir()
    table = pa.table({"prompt": ["p"], "chosen": ["a"], "rejected": ["b"]})
    pq.write_table(table, folder / "train-00000-of-00001.parquet")
    pq.write_table(table, folder / "notes.parquet")  # not an export shard: ignored by all
    (folder / "dedupe.json").write_text("{}")
    assert expand_inputs([folder]) == [folder / "train-00000-of-00001.parquet"]
    assert resolve_dataset_inputs([folder]).files == [(folder / "train-00000-of-00001.parquet").resolve()]
    empty = tmp_path / "empty"
    empty.mkdir()
    for resolve in (expand_inputs, resolve_dataset_inputs):
        with pytest.raises(UsageError, match="not a run folder .* and holds no exported shards"):
            resolve([empty])


def test_sized_batches_stay_small_when_a_dictionary_hides_the_text(tmp_path: Path):
    """dedupe and decontaminate copy Parquet in batches sized by the file's metadata; a
    dictionary-encoded column counts a repeated text once, so without a cap 2,000 copies of
    one 20 kB text came back as a single 40 MB batch (50,000 copies: 1 GB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cotgen.dedupe import DedupeConfig, _write_batch_rows
    from cotgen.io.readers import MAX_SIZED_ROWS, ParquetReader

    path = tmp_path / "same.parquet"
    pq.write_table(pa.table({"text": ["x" * 20_000] * 20_000}), path)
    reader = ParquetReader(path)
    assert reader.parquet.metadata.row_group(0).total_byte_size < 100_000  # the metadata's view
    assert reader.rows_in_bytes(16 << 20) == MAX_SIZED_ROWS
    assert _write_batch_rows(reader, DedupeConfig()) == MAX_SIZED_ROWS
    widest = max(batch.nbytes for batch in reader.arrow_batches(batch_rows=_write_batch_rows(reader, DedupeConfig())))
    assert widest < 200 << 20
