"""Bad input never ends in a traceback: one clear line naming the file, and exit 1 or 2."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cotgen.formats import make_format
from cotgen.tree import Tree


def ol_row(problem: str = "What is 1 + 1?") -> str:
    t = Tree.new(problem, "2")
    t.add(0, "step", "One and one make two.", rating="positive", value=1.0)
    return next(make_format("openlongcot", separator=" ").export(t))["text"]


def one_error_line(err: str, path: Path) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if str(path) in line and "error" in line]
    assert len(lines) == 1, err
    return lines[0]


def test_missing_file(cli, tmp_path: Path):
    for command in (["validate"], ["export", "-f", "openlongcot", "-o", tmp_path / "out"]):
        r = cli(*command, tmp_path / "nope.parquet")
        assert r.code == 2
        assert "nope.parquet: no such file or folder" in one_error_line(r.err, tmp_path / "nope.parquet")


def test_empty_file(cli, tmp_path: Path):
    for name in ("e.parquet", "e.jsonl", "e.txt", "e.json"):
        p = tmp_path / name
        p.write_bytes(b"")
        r = cli("validate", p)
        assert r.code == 1
        assert "empty file" in one_error_line(r.err, p)
    r = cli("export", tmp_path / "e.txt", "-f", "openlongcot", "-o", tmp_path / "out")
    assert r.code == 1 and "empty file" in one_error_line(r.err, tmp_path / "e.txt")


def test_binary_file(cli, tmp_path: Path):
    blob = bytes(range(256)) * 40
    for name in ("b.parquet", "b.jsonl", "b.txt", "b.json", "b.bin"):
        p = tmp_path / name
        p.write_bytes(blob)
        r = cli("validate", p)
        assert r.code == 1, (name, r.err)
        line = one_error_line(r.err, p)
        assert "binary file" in line or "not a readable Parquet file" in line


def test_parquet_with_other_columns(cli, tmp_path: Path):
    p = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), p)
    r = cli("validate", p)
    assert r.code == 1
    line = one_error_line(r.err, p)
    assert "columns a, b do not match any format: expected" in line
    assert "text (openlongcot)" in line and "instruction, response (marco)" in line
    r = cli("export", p, "-f", "openlongcot", "-o", tmp_path / "out")
    assert r.code == 1 and "do not match any format" in r.err


def test_invalid_utf8_names_the_line(cli, tmp_path: Path):
    good = ol_row().encode()
    txt = tmp_path / "u.txt"
    txt.write_bytes(good + b"\n" + good.replace(b"1 + 1", b"1 \xff 1") + b"\n")
    r = cli("validate", txt)
    assert r.code == 1
    line = one_error_line(r.err, txt)
    assert "row 1" in line and "line 2: invalid UTF-8 at byte" in line
    jl = tmp_path / "u.jsonl"
    jl.write_bytes(json.dumps({"text": ol_row()}).encode() + b"\n" + b'{"text": "\xc3"}\n')
    r = cli("validate", jl)
    assert r.code == 1
    assert "line 2: invalid UTF-8" in one_error_line(r.err, jl)
    js = tmp_path / "u.json"
    js.write_bytes(b'[{"instruction": "\xff", "response": "x"}]')
    r = cli("validate", js)
    assert r.code == 1 and "invalid UTF-8 at byte 18" in one_error_line(r.err, js)


def test_a_50_mb_row(cli, tmp_path: Path):
    # One valid row whose step is 50 MB: validated in one pass, no hang, no giant message.
    big = tmp_path / "big.txt"
    big.write_text(ol_row().replace("One and one make two.", "x" * 50_000_000) + "\n")
    r = cli("validate", big, "--json")
    assert r.code == 0, r.err[:500]
    assert json.loads(r.out)["valid_rows"] == 1
    # One 50 MB line of junk: one short error line.
    junk = tmp_path / "junk.txt"
    junk.write_text("<" + "y" * 50_000_000 + "\n")
    r = cli("validate", junk)
    assert r.code == 1
    line = one_error_line(r.err, junk)
    assert len(line) < 2000 and "row 0, char 0" in line


def test_json_that_is_not_an_array(cli, tmp_path: Path):
    p = tmp_path / "obj.json"
    p.write_text('{"instruction": "q", "response": "a"}')
    r = cli("validate", p)
    assert r.code == 1
    assert "expected an array" in one_error_line(r.err, p)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"instruction": "q", ')
    r = cli("validate", broken)
    assert r.code == 1 and "Traceback" not in r.err and str(broken) in r.err


def test_unknown_format(cli, tmp_path: Path):
    p = tmp_path / "a.txt"
    p.write_text(ol_row() + "\n")
    r = cli("validate", p, "--format", "csv")
    assert r.code == 2
    assert "unknown format 'csv'" in r.err and "Traceback" not in r.err
    r = cli("export", p, "--format", "csv", "-o", tmp_path / "out")
    assert r.code == 2 and "unknown format 'csv'" in r.err


def test_export_to_an_out_that_is_a_file(cli, tmp_path: Path):
    src = tmp_path / "a.txt"
    src.write_text(ol_row() + "\n")
    target = tmp_path / "out"
    target.write_text("i am a file")
    r = cli("export", src, "-f", "openlongcot", "-o", target)
    assert r.code == 2
    assert f"--out {target}: is a file, expected a folder" in r.err
    assert target.read_text() == "i am a file"


def test_a_folder_that_is_not_a_run(cli, tmp_path: Path):
    (tmp_path / "plain").mkdir()
    r = cli("validate", tmp_path / "plain")
    assert r.code == 2 and "not a run folder" in r.err
