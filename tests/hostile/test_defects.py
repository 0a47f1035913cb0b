"""One test through the CLI per defect of issue 12 ("nothing lost, nothing doubled, no
traceback"): the exit code, a message naming the file and what is wrong, no traceback, and
nothing half-written left looking valid. The numbers are the issue's.

Signals, kills and concurrent writers run real processes in test_crash_campaign.py (slow);
the corpus of hostile files every reader meets is test_corpus.py.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from corpus import good_tree, record, rows, run_folder, shard  # noqa: E402

from cotgen.io.layout import (
    read_manifest,  # noqa: E402
    shard_paths,  # noqa: E402
)
from cotgen.io.runfolder import RunLock  # noqa: E402
from cotgen.io.trees import iter_input_trees  # noqa: E402
from cotgen.tree import arrow_schema  # noqa: E402

# A small, quick search on the tiny model (seconds).
QUICK = ["--simulations", "2", "--branch", "2", "--max-depth", "3", "--max-step-tokens", "6", "--max-tokens", "24",
         "--concurrency", "4", "--shard-trees", "2", "--max-batch", "16", "--quiet"]


def no_traceback(r) -> None:
    assert "Traceback" not in r.err and "Traceback" not in r.out


def error_line(r, *words: str) -> str:
    no_traceback(r)
    lines = [line for line in r.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, r.err[-3000:]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def cotgen_process(*args: object, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cotgen.cli.main", *map(str, args)], capture_output=True, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, timeout=timeout,
    )


# 1 --------------------------------------------------------------------------------------


def test_01_null_problem_id_or_text_never_a_traceback(cli, tmp_path: Path, monkeypatch):
    cases = {
        "problem": (shard(tmp_path / "p" / "t.parquet", [*rows(2), {**rows(3)[2], "problem": None}], arrow_schema()), "field 'problem' is null"),
        "id": (shard(tmp_path / "i" / "t.parquet", [*rows(2), {**rows(3)[2], "id": None}], arrow_schema()), "field 'id' is null"),
    }
    text_rows = rows(3)
    text_rows[2]["nodes"][1]["text"] = None
    cases["text"] = (shard(tmp_path / "x" / "t.parquet", text_rows, arrow_schema()), "field 'text' is null")
    for name, (path, words) in cases.items():
        r = cli("validate", path)
        assert r.code == 1, (name, r.err)
        no_traceback(r)
        assert f"{path}: row 2" in r.err and words in r.err, r.err
        r = cli("export", path, "-f", "openlongcot", "-o", tmp_path / f"e-{name}", "--json")
        assert r.code == 0 and json.loads(r.out)["trees_skipped"] == 1, r.err
        assert any(words in k for k in json.loads(r.out)["skipped"])
        r = cli("stats", path, "--json")
        assert r.code == 0 and json.loads(r.out)["invalid_trees"] == 1 and words in r.err
        r = cli("inspect", path, "--row", "2")
        assert r.code == 1 and words in error_line(r, str(path), "row 2")
        r = cli("dedupe", path, "-o", tmp_path / f"d-{name}")
        assert r.code == 1 and "refusing to dedupe invalid data" in r.err and f"{path}: 1 invalid row(s): row 2" in r.err
        assert words in r.err
        no_traceback(r)
        assert not (tmp_path / f"d-{name}").exists()
        r = cli("push", path, "--repo", "me/x", "--endpoint", "http://127.0.0.1:9")
        assert r.code == 1 and "refusing to push invalid data" in r.err and words in r.err
        no_traceback(r)


# 2 --------------------------------------------------------------------------------------


def test_02_deeply_nested_json_is_a_message(cli, tmp_path: Path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    r = cli("validate", deep)
    assert r.code == 1
    assert f"{deep}: error: JSON nested too deeply to read" in r.err
    no_traceback(r)
    line = tmp_path / "deep.jsonl"
    line.write_text(json.dumps({"text": "x"}) + "\n" + "[" * 100_000 + "\n")
    r = cli("validate", line)
    assert r.code == 1 and "row 1" in r.err and "nested too deeply" in r.err
    no_traceback(r)


# 3 --------------------------------------------------------------------------------------


def test_03_out_below_a_file_fails_before_the_model_loads(cli, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # A model that does not exist: the --out check must come first, so the message is about --out.
    r = cli("synthesize", "--model", tmp_path / "no-such-model", "--problems", "builtin:arith",
            "--limit", "1", "--out", blocker / "run")
    assert r.code in (1, 2)
    error_line(r, str(blocker / "run"))
    r = cli("synthesize", "--model", tmp_path / "no-such-model", "--problems", "builtin:arith",
            "--limit", "1", "--out", blocker)
    assert r.code == 2
    error_line(r, str(blocker), "not a folder")
    src = run_folder(tmp_path / "run")
    r = cli("dedupe", src, "-o", blocker / "dd")
    assert r.code in (1, 2)
    error_line(r, str(blocker))
    r = cli("model", "tiny", "--out", blocker)
    assert r.code == 2
    error_line(r, str(blocker), "is a file")
    assert blocker.read_text() == "x"
    r = cli("model", "tiny", "--out", blocker / "m")
    assert r.code == 1
    error_line(r, str(blocker))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes through any permission bits")
def test_03_folders_and_files_without_permission(cli, tmp_path: Path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    src = run_folder(tmp_path / "run")
    for args in (["dedupe", src, "-o", locked / "dd"], ["model", "tiny", "--out", locked / "m"],
                 ["export", src, "-f", "openlongcot", "-o", locked / "e"]):
        r = cli(*args)
        assert r.code in (1, 2)
        error_line(r, str(locked))
    shard_file = shard_paths(src)[0]
    shard_file.chmod(0o000)
    r = cli("validate", src)
    assert r.code == 1 and str(shard_file) in r.err
    no_traceback(r)


# 4 --------------------------------------------------------------------------------------


def test_04_a_manifest_that_is_an_array(cli, tmp_path: Path):
    run = run_folder(tmp_path / "run")
    (run / "manifest.json").write_text("[1, 2]")
    for args in (["validate", run], ["export", run, "-f", "openlongcot", "-o", tmp_path / "e"],
                 ["stats", run], ["dedupe", run, "-o", tmp_path / "d"]):
        r = cli(*args)
        assert r.code == 1, (args, r.err)
        assert str(run / "manifest.json") in r.err and "expected a JSON object" in r.err
        no_traceback(r)


# 5 --------------------------------------------------------------------------------------


def _disk_fills_up(monkeypatch, after: int = 0) -> None:
    """Every fsync after the first `after` fails as a full disk does (the writers fsync each file)."""
    real = os.fsync
    calls = {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_05_disk_full_in_export_and_dedupe(cli, tmp_path: Path, monkeypatch):
    src = run_folder(tmp_path / "run", n=6)
    _disk_fills_up(monkeypatch)
    r = cli("export", src, "-f", "openlongcot", "-o", tmp_path / "e")
    assert r.code == 1
    error_line(r, "No space left on device")
    assert [p.name for p in (tmp_path / "e").iterdir()] == [] if (tmp_path / "e").exists() else True
    r = cli("dedupe", src, "-o", tmp_path / "d")
    assert r.code == 1
    error_line(r, "No space left on device")
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_05_09_disk_full_in_model_tiny_leaves_nothing(cli, tmp_path: Path, monkeypatch):
    from cotgen import tiny_model as tiny

    def full(out):
        (Path(out) / "config.json").write_text("")
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(out) / "model.safetensors"))

    monkeypatch.setattr(tiny, "build_tiny_model", full)
    r = cli("model", "tiny", "--out", tmp_path / "m")
    assert r.code == 1
    error_line(r, str(tmp_path / "m"), "No space left on device")
    assert list(tmp_path.iterdir()) == []  # no folder with an empty config.json, no temporary


# 7 --------------------------------------------------------------------------------------


def test_07_a_second_writer_is_refused_naming_the_holder(cli, tmp_path: Path):
    out = tmp_path / "run"
    with RunLock(out):
        r = cli("synthesize", "--model", tmp_path / "no-such-model", "--problems", "builtin:arith",
                "--limit", "1", "--out", out)
        assert r.code == 2
        error_line(r, str(out), f"pid {os.getpid()}", "another cotgen process is writing")
    assert not list(out.glob("trees/*"))


# 8 --------------------------------------------------------------------------------------


def test_08_resume_reconciles_the_manifest_and_removes_stale_temporaries(cli, tmp_path: Path, tiny_model_dir):
    out = tmp_path / "run"
    args = ["synthesize", "--model", tiny_model_dir, "--problems", "builtin:arith", "--out", out, *QUICK]
    assert cli(*args, "--limit", "2").code == 0
    manifest = read_manifest(out)
    # As after a kill between a shard's rename and the manifest write: a shard the manifest
    # does not list, and a temporary file of a dead writer.
    extra = out / "trees" / "part-00007.parquet"
    pq.write_table(pa.Table.from_pylist([good_tree(99).to_row()], schema=arrow_schema()), extra)
    (out / "trees" / ".part-00008.parquet.tmp-999999").write_bytes(b"half")
    (out / ".manifest.json.tmp-999999").write_text("{")
    assert "part-00007.parquet" not in [s["name"] for s in manifest["shards"]]
    r = cli(*args, "--limit", "3")
    assert r.code == 0, r.err
    manifest = read_manifest(out)
    on_disk = sorted(p.name for p in shard_paths(out))
    assert [s["name"] for s in manifest["shards"]] == on_disk
    trees = list(iter_input_trees([out]))
    assert manifest["counts"]["trees"] == len(trees) == 4  # 3 problems + the extra tree
    assert not list(out.rglob("*.tmp-*"))
    assert cli("validate", out).code == 0


# 9 --------------------------------------------------------------------------------------


def test_09_readers_refuse_an_unfinished_run_folder(cli, tmp_path: Path):
    run = run_folder(tmp_path / "run")
    manifest = read_manifest(run)
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    for args in (["validate", run], ["export", run, "-f", "openlongcot", "-o", tmp_path / "e"],
                 ["stats", run], ["inspect", run], ["dedupe", run, "-o", tmp_path / "d"]):
        r = cli(*args)
        assert r.code == 1, (args, r.err)
        assert str(run) in r.err and "unfinished run folder" in r.err and "rerun" in r.err
        no_traceback(r)
    # Its shards, given by name, are complete files and are read.
    assert cli("validate", *shard_paths(run)).code == 0
    (run / "manifest.json").unlink()
    r = cli("validate", run)
    assert r.code == 1 and "trees/ but no manifest.json" in r.err


def test_09_an_export_missing_one_of_its_shards_is_refused(cli, tmp_path: Path):
    src = run_folder(tmp_path / "run", n=40)
    r = cli("export", src, "-f", "openlongcot", "-o", tmp_path / "e", "--max-shard-size", "4KB")
    assert r.code == 0
    shards = sorted((tmp_path / "e").glob("train-*"))  # beside them: the _train.provenance sidecars
    assert len(shards) >= 3
    shards[1].unlink()  # as a crash between two renames would leave it
    r = cli("validate", tmp_path / "e")
    assert r.code == 1 and shards[1].name in r.err and "unfinished" in r.err
    no_traceback(r)


def test_09_dedupe_output_appears_whole_or_not_at_all(cli, tmp_path: Path, monkeypatch):
    src = run_folder(tmp_path / "run", n=4)
    _disk_fills_up(monkeypatch, after=1)  # the first file fits, the next does not
    r = cli("dedupe", src, "-o", tmp_path / "d")
    assert r.code == 1
    assert not (tmp_path / "d").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left either
    monkeypatch.undo()
    r = cli("dedupe", src, "-o", tmp_path / "d")
    assert r.code == 0 and cli("validate", tmp_path / "d").code == 0


# 10 -------------------------------------------------------------------------------------


def test_10_a_dead_engine_stops_the_run_without_recording_trees_in_flight(cli, tmp_path: Path, tiny_model_dir):
    out = tmp_path / "run"
    # Nothing listens on the discard port: every request fails, as with a crashed server.
    r = cli("synthesize", "--model", tiny_model_dir, "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1",
            "--problems", "builtin:arith", "--limit", "3", "--out", out, *QUICK)
    assert r.code == 1
    error_line(r, "127.0.0.1:9", "The run stopped: 0 finished tree(s) are saved", "in flight are not")
    saved = list(iter_input_trees(shard_paths(out))) if shard_paths(out) else []
    assert not [t for t in saved if t.error is not None]
    assert read_manifest(out)["status"] == "interrupted"
    # A rerun on a working engine (the engine is not a setting that shapes trees) finishes it.
    r = cli("synthesize", "--model", tiny_model_dir, "--problems", "builtin:arith", "--limit", "3", "--out", out, *QUICK)
    assert r.code == 0, r.err
    trees = list(iter_input_trees([out]))
    assert len(trees) == len({t.id for t in trees}) == 3 and all(t.error is None for t in trees)
    assert read_manifest(out)["status"] == "complete"


def test_10_a_rerun_retries_failed_trees_unless_asked_to_keep_them(cli, tmp_path: Path, tiny_model_dir):
    out = tmp_path / "run"
    args = ["synthesize", "--model", tiny_model_dir, "--problems", "builtin:arith", "--limit", "3", "--out", out, *QUICK]
    assert cli(*args).code == 0
    # Mark one tree failed, as a generation error (a prompt too long for the context) leaves it.
    path = shard_paths(out)[0]
    table = pq.read_table(path).to_pylist()
    failed_id = table[0]["id"]
    table[0]["error"] = "DataError: prompt 0 is longer than the context"
    pq.write_table(pa.Table.from_pylist(table, schema=arrow_schema()), path)
    r = cli(*args, "--keep-failed")
    assert r.code == 0 and [t.id for t in iter_input_trees([out]) if t.error] == [failed_id]
    r = cli(*args)
    assert r.code == 0, r.err
    trees = list(iter_input_trees([out]))
    assert len(trees) == len({t.id for t in trees}) == 3
    assert all(t.error is None for t in trees)
    assert read_manifest(out)["counts"] == {"trees": 3, "failed": 0}


# 11 -------------------------------------------------------------------------------------


def test_11_validate_refuses_what_export_cannot_read(cli, tmp_path: Path):
    int_ids = rows(2)
    for i, row in enumerate(int_ids):
        row["id"] = i
    int_path = shard(tmp_path / "i" / "t.parquet", int_ids)
    dup_path = shard(tmp_path / "d" / "t.parquet", [*rows(2), rows(1)[0]], arrow_schema())
    for path, words in ((int_path, "the tree id is an int"), (dup_path, "duplicate tree id")):
        r = cli("validate", path)
        assert r.code == 1 and words in r.err, r.err
        no_traceback(r)
    r = cli("export", dup_path, "-f", "openlongcot", "-o", tmp_path / "e", "--json")
    assert r.code == 0 and json.loads(r.out)["trees_exported"] == 2
    assert cli("validate", tmp_path / "e").code == 0
    # Across the shards of one run too.
    run = run_folder(tmp_path / "run", n=2)
    shard(run / "trees" / "part-00001.parquet", rows(1), arrow_schema())
    r = cli("validate", run)
    assert r.code == 1 and "duplicate tree id" in r.err and "part-00001.parquet: row 0" in r.err


# 12 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("option", "value"), [("--temperature", "nan"), ("--c-puct", "inf"),
                                               ("--top-p", "nan"), ("--virtual-loss", "-inf"), ("--widen", "nan")])
def test_12_non_finite_numbers_are_refused(cli, tmp_path: Path, option: str, value: str):
    r = cli("synthesize", "--problems", "builtin:arith", "--out", tmp_path / "run", option, value)
    assert r.code == 2
    error_line(r, "must be a finite number", value)
    assert not (tmp_path / "run").exists()


def test_12_a_negative_widening_is_refused(cli, tmp_path: Path):
    r = cli("synthesize", "--problems", "builtin:arith", "--out", tmp_path / "run", "--widen", "-1")
    assert r.code == 2
    error_line(r, "widen must be >= 0")
    assert not (tmp_path / "run").exists()


# 13, 14 ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_13_14_a_huge_problem_fails_fast_and_unanswered_problems_are_counted(tmp_path: Path, tiny_model_dir):
    problems = tmp_path / "p.jsonl"
    lines = [{"question": "What is 2 + 3?", "answer": "5"}, {"question": "x " * 25_000_000, "answer": "1"},
             {"question": "What is 4 + 4?"}, {"question": "What is 1 + 6?", "answer": "7"}]
    problems.write_text("".join(json.dumps(x) + "\n" for x in lines))
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "cotgen.cli.main", "synthesize", "--model", tiny_model_dir,
         "--problems", problems, "--out", tmp_path / "run", *QUICK[:-1]],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "1 of the 3 problem(s) to search have no answer" in proc.stderr
    assert "longer than" in proc.stderr and "p.jsonl" in proc.stderr
    peak_kb = int(next(line.split()[-1] for line in proc.stderr.splitlines() if "Maximum resident" in line))
    assert peak_kb < 2_500_000, peak_kb  # the 50 MB question is refused by size, never tokenized
    trees = list(iter_input_trees([tmp_path / "run"]))
    assert len(trees) == 3 and all(len(t.problem) < 100 for t in trees)


# 15 -------------------------------------------------------------------------------------


def test_15_inspect_and_stats_apply_the_invariants(cli, tmp_path: Path):
    bad = rows(2)
    nodes = bad[1]["nodes"]
    nodes[1]["parent"], nodes[2]["parent"] = nodes[2]["id"], nodes[1]["id"]  # a cycle 1 <-> 2
    path = shard(tmp_path / "c" / "t.parquet", bad, arrow_schema())
    r = cli("inspect", path, "--row", "1")
    assert r.code == 1
    error_line(r, f"{path}: row 1", "an invalid tree, not drawn", "does not exist before it")
    r = cli("stats", path, "--json")
    assert r.code == 0
    figures = json.loads(r.out)
    assert figures["trees"] == 1 and figures["invalid_trees"] == 1
    assert "invalid or unreadable tree(s) not counted" in r.err


# 16 -------------------------------------------------------------------------------------


def test_16_messages_name_the_column_and_the_open_thought(cli, tmp_path: Path):
    wrong = rows(2)
    for row in wrong:
        row["nodes"] = "not nodes"
    path = shard(tmp_path / "w" / "t.parquet", wrong)
    r = cli("validate", path)
    assert r.code == 1 and "field 'nodes' is a string, expected a list of node records" in r.err
    assert "missing 4 required positional arguments" not in r.err
    ol = tmp_path / "ol.txt"
    ol.write_text(record(-1, 0, "<problem>What is 1+1?", None).replace("<end_of_thought>", "") + record(0, 1, "2") + "\n")
    r = cli("validate", ol)
    assert r.code == 1 and "its thought has no <end_of_thought> before the next record" in r.err
    assert "double-wrapped" not in r.err


# 18 -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_18_quiet_means_quiet_and_a_normal_run_has_no_library_warnings(tmp_path: Path, tiny_model_dir):
    base = ["synthesize", "--model", tiny_model_dir, "--problems", "builtin:arith", "--limit", "2", *QUICK[:-1]]
    proc = cotgen_process(*base, "--out", tmp_path / "q", "--quiet")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    proc = cotgen_process(*base, "--out", tmp_path / "n")
    assert proc.returncode == 0
    assert "Warning" not in proc.stderr and "deprecated" not in proc.stderr, proc.stderr[-2000:]


def test_03_a_read_only_disk(cli, tmp_path: Path, read_only_disk: Path):
    src = run_folder(tmp_path / "run")
    r = cli("synthesize", "--model", tmp_path / "no-such-model", "--problems", "builtin:arith",
            "--limit", "1", "--out", read_only_disk / "run")
    assert r.code == 1
    error_line(r, str(read_only_disk / "run"), "Read-only file system")  # before the model: it does not exist
    for args in (["dedupe", src, "-o", read_only_disk / "d"], ["model", "tiny", "--out", read_only_disk / "m"],
                 ["export", src, "-f", "openlongcot", "-o", read_only_disk / "e"]):
        r = cli(*args)
        assert r.code in (1, 2), args
        error_line(r, str(read_only_disk), "Read-only file system")
