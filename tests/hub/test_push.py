"""`cotgen push` against the fake Hub on 127.0.0.1: layout, card, resume, retries, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from fake_hub import TOKEN

from cotgen.formats import make_format
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree

REPO = "me/gsm8k-longcot"


def make_tree(i: int, steps: int = 2) -> Tree:
    tree = Tree.new(f"What is {i} + {i}? Explain step by step, problem number {i}.", answer=str(2 * i), model="tiny")
    parent = 0
    for s in range(steps):
        parent = tree.add(parent, "step", f"Step {s}: adding {i} and {i} " + "carefully " * 20, rating="positive").id
    tree.add(parent, "conclusion", f"So the answer is \\boxed{{{2 * i}}}", terminal=True, correct=True, rating="positive")
    return tree


@pytest.fixture
def run_dir(tmp_path) -> Path:
    # Shaped like synthesize's settings: the engine part is machine-local and never published.
    settings = {"model": "tiny", "search": {"simulations": 8, "c_puct": 1.5}, "prompts": "abc123",
                "hint_answer": False,
                "engine": {"base_url": "http://gpu-box.internal:8000/v1", "device": "cuda:3", "max_batch": 64}}
    writer = TreeShardWriter(tmp_path / "run", settings=settings)
    writer.write([make_tree(i) for i in range(3)])
    writer.write([make_tree(i) for i in range(3, 6)])
    return tmp_path / "run"


@pytest.fixture
def export_dir(tmp_path) -> Path:
    fmt = make_format("openlongcot")
    rows = [row for i in range(8) for row in fmt.export(make_tree(i))]
    out = tmp_path / "openlongcot"
    out.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), out / "train-00000-of-00001.parquet")
    return out


def card_meta(hub) -> dict:
    text = hub.files(REPO)["README.md"].decode()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_push_run_then_export_merges_configs_and_reads_back(hub, run_push, run_dir, export_dir, online, tmp_path):
    r = run_push(run_dir, "--repo", REPO, "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["uploaded"] == [
        "data/trees/train-00000-of-00002.parquet", "data/trees/train-00001-of-00002.parquet", "README.md",
    ]
    assert report["rows"] == 6 and len(hub.uploads) == 2

    r = run_push(export_dir, "--repo", REPO)
    assert r.code == 0, r.err
    files = hub.files(REPO)
    assert "data/openlongcot/train-00000-of-00001.parquet" in files
    meta = card_meta(hub)
    assert [c["config_name"] for c in meta["configs"]] == ["openlongcot", "trees"]
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/openlongcot/train-*"}]
    assert {"synthetic", "chain-of-thought", "mcts", "cotgen"} <= set(meta["tags"]) and meta["license"]
    card = files["README.md"].decode()
    assert "## Config `trees`" in card and "## Config `openlongcot`" in card
    assert '"simulations": 8' in card and "6 rows" in card and "<start_of_father_id>" in card
    # Only what describes the data is published: nothing of the machine that made it.
    assert '"prompts": "abc123"' in card
    for local in ("gpu-box.internal", "base_url", "cuda:3", "max_batch", '"engine"'):
        assert local not in card, local

    from huggingface_hub import hf_hub_download

    local = hf_hub_download(
        REPO, "data/openlongcot/train-00000-of-00001.parquet", repo_type="dataset",
        endpoint=hub.url, token=TOKEN, cache_dir=tmp_path / "cache",
    )
    assert Path(local).read_bytes() == (export_dir / "train-00000-of-00001.parquet").read_bytes()
    # This process is frozen offline by the top conftest; the real `load_dataset(REPO, config)`
    # runs in a subprocess in test_load_dataset_reads_both_configs_back.
    import datasets

    ds = datasets.load_dataset("parquet", data_files={"train": local}, split="train", cache_dir=str(tmp_path / "ds"))
    assert ds.num_rows == 8 and ds[0]["text"].startswith("<start_of_father_id>-1")


# Run with cwd = the output folder; argv = the configs. Each split is written back as Parquet
# so the test compares it with what was pushed; the first config is also streamed, which
# reads the shards through HfFileSystem with Range requests.
LOAD_SCRIPT = """
import json, sys
import datasets

repo, configs = sys.argv[1], sys.argv[2:]
for config in configs:
    datasets.load_dataset(repo, config, split="train").to_parquet(f"{config}.parquet")
streamed = datasets.load_dataset(repo, configs[0], split="train", streaming=True)
with open("streamed.json", "w") as f:
    json.dump([row["text"] for row in streamed], f)
"""


@pytest.mark.slow
def test_load_dataset_reads_both_configs_back(hub, push_env, run_push, run_dir, export_dir, proxy_trap, tmp_path):
    assert run_push(export_dir, "--repo", REPO).code == 0
    assert run_push(run_dir, "--repo", REPO).code == 0  # a second config, pushed later
    out = tmp_path / "loaded"
    out.mkdir()
    env = {
        **push_env,
        "HF_HOME": str(tmp_path / "reader-home"),  # nothing cached by the pushes
        "HF_DATASETS_CACHE": str(tmp_path / "reader-home" / "datasets"),
        # datasets pings s3.amazonaws.com to count downloads unless told not to.
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        # Anything not for 127.0.0.1 goes to the trap, which records it and answers nothing.
        **{k: proxy_trap.url for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")},
    }
    assert "HF_HUB_OFFLINE" not in env and "HF_DATASETS_OFFLINE" not in env
    first = len(hub.requests)
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, REPO, "openlongcot", "trees"],
        env=env, cwd=out, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The one request that leaves HF_ENDPOINT: datasets asks the dataset viewer, at the host
    # it derives from the endpoint, for exported infos, and falls back to the repo on failure.
    # The trap stopped it before any DNS lookup; nothing else tried to get out.
    viewer = hub.url.replace("://", "://datasets-server.") + "/info?dataset="
    assert all(seen.startswith(f"GET {viewer}{REPO} ".encode()) for seen in proxy_trap.seen), proxy_trap.seen

    pushed_text = pq.read_table(export_dir / "train-00000-of-00001.parquet").column("text").to_pylist()
    assert pq.read_table(out / "openlongcot.parquet").column("text").to_pylist() == pushed_text
    assert json.loads((out / "streamed.json").read_text()) == pushed_text
    pushed_trees = [row for f in sorted((run_dir / "trees").glob("*.parquet")) for row in pq.read_table(f).to_pylist()]
    assert len(pushed_trees) == 6
    assert pq.read_table(out / "trees.parquet").to_pylist() == pushed_trees

    read = hub.requests[first:]
    assert read and all(REPO in path or path == "/api/agent-harnesses" for _, path in read), read
    assert not any(m in ("PUT", "POST") and "/paths-info/" not in path for m, path in read)
    assert hub.ranges and all(path.startswith("data/openlongcot/") for path, _ in hub.ranges)


def test_repush_uploads_nothing(hub, run_push, run_dir):
    assert run_push(run_dir, "--repo", REPO).code == 0
    uploads, commits = len(hub.uploads), len(hub.commits)
    r = run_push(run_dir, "--repo", REPO, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["uploaded"] == []
    assert (len(hub.uploads), len(hub.commits)) == (uploads, commits)


def test_transient_errors_are_retried(hub, run_push, run_dir):
    hub.fail_next(429, times=2, path_prefix=f"/api/datasets/{REPO}/preupload")
    hub.fail_next(500, times=1, path_prefix=f"/api/datasets/{REPO}/commit")
    r = run_push(run_dir, "--repo", REPO)
    assert r.code == 0, r.err
    assert [s for _, _, s in hub.failed] == [429, 429, 500]
    assert "data/trees/train-00001-of-00002.parquet" in hub.files(REPO)


def test_killed_server_mid_push_then_rerun_completes(hub, push_env, run_push, tmp_path):
    writer = TreeShardWriter(tmp_path / "big")
    for k in range(4):
        writer.write([make_tree(10 * k + i) for i in range(2)])
    hub.kill_after_uploads = 2  # the server dies after the second LFS upload
    proc = subprocess.Popen(
        [sys.executable, "-m", "cotgen.cli.main", "push", str(tmp_path / "big"), "--repo", REPO],
        env=push_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not hub.dead and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.dead
    time.sleep(0.5)  # the client is now retrying against a dead server: stop it, like a crash
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert REPO not in hub.repos or "data/trees/train-00003-of-00004.parquet" not in hub.files(REPO)
    uploaded_before = len(hub.uploads)
    hub.revive()
    r = run_push(tmp_path / "big", "--repo", REPO, "--json")
    assert r.code == 0, r.err
    assert sorted(p for p in hub.files(REPO) if p.startswith("data/")) == [
        f"data/trees/train-{i:05d}-of-00004.parquet" for i in range(4)
    ]
    assert len(hub.uploads) - uploaded_before == 2  # the two objects sent before the kill are not resent


def test_invalid_file_is_refused_before_any_upload(hub, run_push, tmp_path):
    bad = make_tree(1)
    bad.nodes[1].correct = True  # 'correct' on a node that is not terminal
    TreeShardWriter(tmp_path / "bad").write([make_tree(0), bad])
    r = run_push(tmp_path / "bad", "--repo", REPO)
    assert r.code == 1
    assert "row 1" in r.err and "not terminal" in r.err and "part-00000.parquet" in r.err
    assert hub.requests == [] and hub.uploads == []


def test_bad_repo_id_is_a_usage_error(hub, run_push, run_dir):
    for repo in ("no-owner", "me/bad name", "me/a--b"):
        r = run_push(run_dir, "--repo", repo)
        assert r.code == 2 and "--repo" in r.err, (repo, r.err)
    assert hub.requests == []


def test_missing_token_and_rejected_token(hub, push_env, run_push, run_dir):
    env = {k: v for k, v in push_env.items() if k != "HF_TOKEN"}
    r = run_push(run_dir, "--repo", REPO, env=env)
    assert r.code == 2 and "no Hugging Face token" in r.err
    r = run_push(run_dir, "--repo", REPO, env={**push_env, "HF_TOKEN": "hf_wrong_token_value"})
    assert r.code == 2 and "the Hub rejected the token" in r.err
    assert "hf_wrong_token_value" not in r.err + r.out


def test_token_never_printed(hub, run_push, run_dir, push_env):
    hub.fail_next(503, times=1, path_prefix=f"/api/datasets/{REPO}/commit")
    for r in (run_push(run_dir, "--repo", REPO, "--json"), run_push(run_dir, "--repo", REPO)):
        assert r.code == 0, r.err
        assert TOKEN not in r.out + r.err


def test_missing_revision_and_foreign_file(hub, run_push, run_dir, tmp_path):
    r = run_push(run_dir, "--repo", REPO, "--revision", "nope")
    assert r.code == 2 and "revision 'nope' does not exist" in r.err
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    r = run_push(foreign, "--repo", REPO)
    assert r.code == 1 and "foreign.parquet" in r.err and "Traceback" not in r.err


def test_endpoint_option_overrides_env(hub, push_env, run_push, run_dir):
    env = {**push_env, "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens on the discard port
    r = run_push(run_dir, "--repo", REPO, "--endpoint", hub.url, env=env)
    assert r.code == 0, r.err
    assert os.path.basename(sorted(hub.files(REPO))[-1]).startswith("train-")


def test_a_shard_of_an_older_cotgen_is_pushed_in_todays_schema(hub, run_push, run_dir):
    """A run folder resumed across versions holds shards of two schemas (the older lacks
    nodes.grade_note); `datasets` reads all of a config's files with the first one's schema,
    so the pushed shards must agree, the old one's missing field null."""
    from cotgen.tree import arrow_schema

    first = sorted((run_dir / "trees").glob("*.parquet"))[0]
    table = pq.read_table(first)
    nodes = table.schema.field("nodes").type.value_type
    old_node = pa.struct([f for f in nodes if f.name != "grade_note"])
    old = table.cast(pa.schema([pa.field(f.name, pa.list_(old_node)) if f.name == "nodes" else f for f in table.schema]))
    pq.write_table(old, first)
    assert "grade_note" not in str(pq.read_schema(first))
    assert run_push(run_dir, "--repo", REPO).code == 0
    pushed = {p: d for p, d in hub.files(REPO).items() if p.startswith("data/trees/")}
    assert len(pushed) == 2
    for path, data in pushed.items():
        shard = pq.read_table(pa.BufferReader(hub.lfs.get(_lfs_oid(data), data)))
        assert shard.schema.equals(arrow_schema()), path
    rows = pq.read_table(pa.BufferReader(hub.lfs.get(_lfs_oid(pushed["data/trees/train-00000-of-00002.parquet"]),
                                                     pushed["data/trees/train-00000-of-00002.parquet"]))).to_pylist()
    assert [n["grade_note"] for row in rows for n in row["nodes"]] == [None] * sum(len(r["nodes"]) for r in rows)
    assert [r["id"] for r in rows] == table.column("id").to_pylist()


def _lfs_oid(data: bytes) -> str | None:
    """The oid of a Git LFS pointer file, or None for a file stored as is."""
    text = data[:200].decode("utf-8", "replace")
    return text.split("oid sha256:")[1].split()[0] if "oid sha256:" in text else None
