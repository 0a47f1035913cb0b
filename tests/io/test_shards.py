"""Tree shards: atomic writes, the manifest, streaming reads, resume ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cotgen.errors import DataError, UsageError
from cotgen.io.inputs import expand_inputs
from cotgen.io.layout import read_manifest, shard_paths
from cotgen.io.readers import TreeShardReader
from cotgen.io.trees import finished_tree_ids, iter_input_trees
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree


def trees(n: int, start: int = 0) -> list[Tree]:
    out = []
    for i in range(start, start + n):
        t = Tree.new(f"problem {i}", str(i))
        t.add(0, "step", f"step for {i}")
        out.append(t)
    return out


def test_write_and_read_back(tmp_path: Path):
    w = TreeShardWriter(tmp_path / "run", settings={"branch": 3})
    written = trees(3) + trees(2, start=3)
    w.write(written[:3])
    w.write(written[3:])
    assert [p.name for p in shard_paths(tmp_path / "run")] == ["part-00000.parquet", "part-00001.parquet"]
    back = list(iter_input_trees([tmp_path / "run"]))
    assert [t.problem for t in back] == [f"problem {i}" for i in range(5)]
    assert back == written
    m = read_manifest(tmp_path / "run")
    assert m["counts"] == {"trees": 5, "failed": 0}
    assert [s["rows"] for s in m["shards"]] == [3, 2]
    assert m["settings"] == {"branch": 3}


def test_writer_continues_numbering_after_restart(tmp_path: Path):
    TreeShardWriter(tmp_path).write(trees(1))
    TreeShardWriter(tmp_path).write(trees(1, start=1))
    assert [p.name for p in shard_paths(tmp_path)] == ["part-00000.parquet", "part-00001.parquet"]
    assert read_manifest(tmp_path)["counts"]["trees"] == 2


def test_failed_trees_are_counted(tmp_path: Path):
    ts = trees(2)
    ts[1].error = "engine failed: out of memory"
    TreeShardWriter(tmp_path).write(ts)
    assert read_manifest(tmp_path)["counts"] == {"trees": 2, "failed": 1}
    assert [t.error for t in iter_input_trees([tmp_path])] == [None, "engine failed: out of memory"]


def test_finished_ids_for_resume(tmp_path: Path):
    ts = trees(4)
    TreeShardWriter(tmp_path).write(ts)
    assert finished_tree_ids(tmp_path) == {t.id for t in ts}


def test_temporary_files_are_not_shards(tmp_path: Path):
    TreeShardWriter(tmp_path).write(trees(1))
    (tmp_path / "trees" / ".part-00001.parquet.tmp-123").write_bytes(b"half a shard")
    assert len(shard_paths(tmp_path)) == 1
    assert len(list(iter_input_trees([tmp_path]))) == 1


def test_crash_mid_write_leaves_no_final_shard(tmp_path: Path):
    # A child process dies (os._exit) while pyarrow is writing: nothing appears under a final name.
    code = textwrap.dedent(
        f"""
        import os, pyarrow.parquet as pq
        from cotgen.io.writers import TreeShardWriter
        from cotgen.tree import Tree
        real = pq.write_table
        def dying(table, where, **kw):
            where.write(b"PAR1 partial")
            os._exit(9)
        pq.write_table = dying
        TreeShardWriter({str(tmp_path)!r}).write([Tree.new("q", "1")])
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 9
    assert shard_paths(tmp_path) == []
    assert finished_tree_ids(tmp_path) == set()


def test_reader_streams_by_batches(tmp_path: Path):
    TreeShardWriter(tmp_path).write(trees(600))
    pf = pq.ParquetFile(shard_paths(tmp_path)[0])
    assert pf.metadata.num_rows == 600
    it = iter_input_trees([tmp_path])
    first = next(it)
    assert first.problem == "problem 0"
    assert sum(1 for _ in it) == 599


def test_missing_input_is_usage_error(tmp_path: Path):
    with pytest.raises(UsageError, match="no such file"):
        expand_inputs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="not a run folder"):
        expand_inputs([tmp_path / "empty"])


def test_not_a_tree_shard(tmp_path: Path):
    import pyarrow as pa

    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1]}), path)
    with pytest.raises(DataError, match="not a tree shard: missing column"):
        TreeShardReader(path)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(os.urandom(64))
    with pytest.raises(DataError, match="not a readable Parquet file"):
        list(iter_input_trees([bad]))


def test_manifest_is_valid_json_after_each_shard(tmp_path: Path):
    w = TreeShardWriter(tmp_path)
    for i in range(3):
        w.write(trees(1, start=i))
        json.loads((tmp_path / "manifest.json").read_text())


def test_a_shard_the_manifest_missed_is_counted_on_resume(tmp_path: Path):
    # A kill between a shard's rename and the manifest's rewrite leaves such a shard.
    TreeShardWriter(tmp_path).write(trees(2))
    manifest = read_manifest(tmp_path)
    ts = trees(1, start=2)
    ts[0].error = "engine failed"
    TreeShardWriter(tmp_path).write(ts)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    w = TreeShardWriter(tmp_path)
    assert read_manifest(tmp_path)["counts"] == {"trees": 3, "failed": 1}
    w.write(trees(1, start=3))
    assert [s["name"] for s in read_manifest(tmp_path)["shards"]] == [p.name for p in shard_paths(tmp_path)]
    assert read_manifest(tmp_path)["counts"]["trees"] == 4


def test_a_discarded_parquet_export_shard_leaves_no_ignored_exception(tmp_path):
    """export discards its open shard when a signal stops it; the pyarrow writer it drops
    must not write its footer to the closed file when collected ("Exception ignored ...
    write to closed file" on stderr, after export's one-line message: seen when the signal
    landed inside a Parquet write)."""
    from cotgen.io.writers import ParquetShardWriter

    shard = ParquetShardWriter(tmp_path, "train", 1 << 20)
    shard.add({"text": "x" * 100})
    shard._flush()  # the Parquet file is open, its footer not yet written
    dropped = shard.writer
    assert dropped is not None and dropped.is_open
    shard.discard()
    dropped.__del__()  # what collecting it runs: a no-op now, not a write to a closed file
    assert list(tmp_path.iterdir()) == []
