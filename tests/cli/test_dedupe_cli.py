"""`cotgen dedupe` through the CLI: exit codes, --json on stdout, the table on stderr."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq


def test_dedupe_cli_json_and_table(cli, tmp_path):
    src = tmp_path / "in" / "train-00000-of-00001.parquet"
    src.parent.mkdir()
    text = " ".join(f"word{i}" for i in range(50))
    pq.write_table(pa.table({"text": [text, text, "other words entirely here"]}), src)
    r = cli("dedupe", src, "--out", tmp_path / "out", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert (summary["rows"], summary["kept"], summary["dropped"]) == (3, 2, {"exact": 1, "near": 0})
    assert "near dups" in r.err
    assert (tmp_path / "out" / "dedupe.json").is_file()


def test_dedupe_cli_usage_errors(cli, tmp_path):
    r = cli("dedupe", tmp_path / "missing", "--out", tmp_path / "out")
    assert r.code == 2 and "no such file" in r.err
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["a"]}), src)
    r = cli("dedupe", src, "--out", tmp_path / "out", "--on", "title")
    assert r.code == 2 and "--on" in r.err
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"x": [1]}), bad)
    r = cli("dedupe", bad, "--out", tmp_path / "out2")
    assert r.code == 1 and "bad.parquet" in r.err and "Traceback" not in r.err
