"""`cotgen export`: shards, format options passed through, summaries, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from small_trees import make_tree

from cotgen.io.writers import TreeShardWriter


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    trees = [make_tree(i) for i in range(12)]
    trees[4].error = "out of memory"
    TreeShardWriter(tmp_path / "run").write(trees)
    return tmp_path / "run"


def test_export_openlongcot_then_validate(cli, run_dir: Path, tmp_path: Path):
    out = tmp_path / "ol"
    r = cli("export", run_dir, "--format", "openlongcot", "--out", out)
    assert r.code == 0, r.err
    assert r.out == ""
    assert "exported 11 openlongcot row(s) from 11 of 12 tree(s)" in r.err
    assert "skipped 1 tree(s): failed tree: out of memory" in r.err
    shard = out / "train-00000-of-00001.parquet"
    assert pq.read_table(shard).column_names == ["text", "id", "problem", "answer"]
    assert cli("validate", shard).code == 0


def test_json_summary_on_stdout(cli, run_dir: Path, tmp_path: Path):
    r = cli("export", run_dir, "-f", "marco", "-o", tmp_path / "m", "--split", "test", "--json", "-q")
    assert r.code == 0, r.err
    assert r.err == ""
    s = json.loads(r.out)
    assert s["shards"] == ["test-00000-of-00001.json"]
    assert (s["rows_written"], s["trees_read"], s["trees_skipped"]) == (11, 12, 1)
    assert s["skipped"] == {"failed tree: out of memory": 1}
    assert len(json.loads((tmp_path / "m" / "test-00000-of-00001.json").read_text())) == 11


def test_format_options_pass_through(cli, run_dir: Path, tmp_path: Path):
    r = cli("export", run_dir, "-f", "openlongcot", "-o", tmp_path / "a", "--separator", " ", "--root-rating")
    assert r.code == 0, r.err
    text = pq.read_table(tmp_path / "a" / "train-00000-of-00001.parquet").column("text")[0].as_py()
    assert "\n" not in text and "> <start_of_father_id>" in text
    first = text[: text.index(" <start_of_father_id>")]
    assert first.endswith("<end_of_rating>")  # the root record is rated
    # Escapes: '\t' typed on a shell is a tab.
    r = cli("export", run_dir, "-f", "openlongcot", "-o", tmp_path / "b", "--separator", "\\t")
    assert r.code == 0, r.err
    assert "\t<start_of_father_id>" in pq.read_table(tmp_path / "b").column("text")[0].as_py()
    # Journey only applies to formats that take it.
    r = cli("export", run_dir, "-f", "marco", "-o", tmp_path / "c", "--journey", "--max-journey-branches", "2")
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "openlongcot", "--journey"], "--journey does not apply to --format openlongcot"),
        (["-f", "marco", "--separator", " "], "--separator does not apply to --format marco"),
        (["-f", "openlongcot", "--separator", "|"], "separator must be whitespace"),
        (["-f", "yaml"], "unknown format 'yaml'"),
        (["-f", "openlongcot", "--max-shard-size", "huge"], "cannot read 'huge' as a size"),
        (["-f", "marco", "--max-journey-branches", "0"], "--format marco"),
    ],
)
def test_usage_errors_exit_2(cli, run_dir: Path, tmp_path: Path, args: list[str], message: str):
    r = cli("export", run_dir, "-o", tmp_path / "x", *args)
    assert r.code == 2
    assert message in r.err
    assert "Traceback" not in r.err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_existing_shards_need_overwrite(cli, run_dir: Path, tmp_path: Path):
    out = tmp_path / "ol"
    assert cli("export", run_dir, "-f", "openlongcot", "-o", out).code == 0
    r = cli("export", run_dir, "-f", "openlongcot", "-o", out)
    assert r.code == 2 and "--overwrite" in r.err
    r = cli("export", run_dir, "-f", "openlongcot", "-o", out, "--overwrite", "--max-shard-size", "2KB")
    assert r.code == 0, r.err
    names = sorted(p.name for p in out.glob("train-*"))  # beside them: the _train.provenance sidecars
    assert len(names) > 1 and names[-1].endswith(f"-of-{len(names):05d}.parquet")


def test_convert_openlongcot_to_marco(cli, run_dir: Path, tmp_path: Path):
    assert cli("export", run_dir, "-f", "openlongcot", "-o", tmp_path / "ol").code == 0
    r = cli("export", tmp_path / "ol" / "train-00000-of-00001.parquet", "-f", "marco", "-o", tmp_path / "m")
    assert r.code == 0, r.err
    # OpenLongCoT carries no verdicts: terminal leaves are graded against the `answer`
    # column on the way in, so each tree's one correct path comes back as from the run.
    assert "exported 11 marco row(s) from 11 of 11 tree(s)" in r.err
    assert cli("export", run_dir, "-f", "marco", "-o", tmp_path / "direct").code == 0
    converted = (tmp_path / "m" / "train-00000-of-00001.json").read_text()
    assert converted == (tmp_path / "direct" / "train-00000-of-00001.json").read_text()


def test_dpo_pairs_option_reaches_the_format(cli, tmp_path: Path):
    trees = []
    for i in range(3):
        t = make_tree(i)
        for j, value in enumerate((0.0, 0.3)):  # two more siblings of the first step
            t.add(0, "step", f"Guess {j}.", rating="negative", value=value)
        trees.append(t)
    run_dir = tmp_path / "run"
    TreeShardWriter(run_dir).write(trees)
    assert cli("export", run_dir, "-f", "dpo", "--pairs", "all", "-o", tmp_path / "all").code == 0
    assert cli("export", run_dir, "-f", "dpo", "-o", tmp_path / "bw").code == 0
    n_all = pq.read_table(tmp_path / "all" / "train-00000-of-00001.parquet").num_rows
    n_bw = pq.read_table(tmp_path / "bw" / "train-00000-of-00001.parquet").num_rows
    assert (n_all, n_bw) == (6, 3)  # 0.8 pairs with 0.0 and 0.3; best-worst keeps 0.8/0.0
    r = cli("export", run_dir, "-f", "dpo", "--pairs", "some", "-o", tmp_path / "bad")
    assert r.code == 2 and "pairs" in r.err
