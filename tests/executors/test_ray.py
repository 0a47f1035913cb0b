"""`synthesize --executor ray` on a real local Ray cluster (127.0.0.1), with real signals:
the same trees as a local run, a kill -9'd worker's trees requeued, a killed driver resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ray_helpers import kill_tree

from cotgen.io.layout import TREE_SHARD, read_manifest, shard_paths
from cotgen.io.trees import iter_input_trees as iter_trees

pytestmark = pytest.mark.slow

SMALL = ["--problems", "builtin:arith", "--simulations", "4", "--branch", "2", "--max-depth", "4",
         "--max-step-tokens", "8", "--max-tokens", "24", "--max-batch", "8", "--seed", "3"]


def driver(cluster, model: Path, out: Path, *args: object, env: dict | None = None,
           ignore_sigint: bool = False) -> subprocess.Popen:
    """`cotgen synthesize --executor ray` in its own process group, as a user runs it in a
    terminal (where Ctrl-C signals the whole foreground group); with `ignore_sigint`, as
    `cotgen ... &` from a script starts it: SIGINT ignored from the start."""
    cmd = [sys.executable, "-m", "cotgen.cli.main", "synthesize", "--model", str(model), "--out", str(out),
           "--executor", "ray", *SMALL, *map(str, args)]
    return subprocess.Popen(cmd, env={**cluster.env, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None)


def finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the driver hung:\n{err[-3000:]}")
    return proc.returncode, out, err


def wait_until(cond, proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the driver exited ({proc.returncode}) before {what}:\n{proc.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def ids_once(out: Path) -> list[str]:
    # By name: a stopped or killed run folder is unfinished, and readers refuse the folder.
    ids = [t.id for t in iter_trees(shard_paths(out))] if shard_paths(out) else []
    assert len(ids) == len(set(ids)), "a tree was written twice"
    return ids


def test_two_workers_make_the_trees_of_a_local_run(ray_cluster, tiny_model_dir, tmp_path, cli):
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    r = cli("synthesize", "--model", tiny_model_dir, "--out", local, "--limit", 12, "--concurrency", 2,
            "--shard-trees", 3, "--quiet", *SMALL)
    assert r.code == 0, r.err
    proc = driver(ray_cluster, tiny_model_dir, ray_out, "--limit", 12, "--concurrency", 2, "--shard-trees", 3,
                  "--workers", 2, "--ray-address", ray_cluster.address, "--json")
    code, out, err = finish(proc)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["trees"] == 12 and summary["executor"] == "ray" and summary["worker_deaths"] == 0
    assert sorted(ids_once(ray_out)) == sorted(ids_once(local))
    # Workers' shards, each under its worker's tag (how the problems split between the two
    # depends on when each worker was up: the kill test below waits for both), every one
    # recorded by the driver.
    tags = {TREE_SHARD.match(p.name)["tag"] for p in shard_paths(ray_out)}
    assert tags and None not in tags
    manifest = read_manifest(ray_out)
    assert manifest["counts"] == {"trees": 12, "failed": 0}
    assert sorted(s["name"] for s in manifest["shards"]) == [p.name for p in shard_paths(ray_out)]
    assert manifest["settings"] == read_manifest(local)["settings"]
    # Every other command reads it as it reads a local run.
    for fmt, extra in (("openlongcot", []), ("prm", ["--paths", "all"])):  # a random model: few answers
        r = cli("export", ray_out, "--format", fmt, *extra, "--out", tmp_path / fmt, "--quiet")
        assert r.code == 0, r.err
        r = cli("validate", tmp_path / fmt)
        assert r.code == 0, r.out + r.err
    r = cli("stats", ray_out, "--json")
    assert r.code == 0, r.err
    r = cli("inspect", ray_out, "--row", 5)
    assert r.code == 0, r.err
    r = cli("dedupe", ray_out, "--out", tmp_path / "dedup", "--on", "problem", "--quiet")
    assert r.code == 0, r.err
    # Other settings into the same folder are refused, as for a local run.
    changed = [*SMALL, "--simulations", "5"]  # the last one given wins
    r = cli("synthesize", "--model", tiny_model_dir, "--out", ray_out, "--limit", 12, "--executor", "ray",
            "--ray-address", ray_cluster.address, *changed)
    assert r.code == 2 and "simulations: 4 -> 5" in r.err, r.err
    # A local rerun resumes it: nothing left to do.
    r = cli("synthesize", "--model", tiny_model_dir, "--out", ray_out, "--limit", 12, "--concurrency", 2,
            "--shard-trees", 3, "--json", "--quiet", *SMALL)
    assert r.code == 0, r.err
    assert json.loads(r.out)["already_done"] == 12


def test_a_worker_killed_mid_run_loses_only_its_trees_in_flight(ray_cluster, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    limit = 40  # enough that the later of the two workers to start still finds work
    # Each worker's second shard write pauses 6 s once the file is in place (a test hook,
    # forwarded to the workers; the write runs in a thread, so the worker goes on searching
    # and buffering). So the first worker up cannot race through the problems in shards while
    # the second still loads its model (6 and 14 of the 40 trees were in shards by the kill
    # in two idle runs), and whichever is killed surely holds trees not yet in a shard.
    # Otherwise the victim could sit between finishing what it held and being fed more, and
    # nothing was requeued ('requeued': 0, seen once in a full run of this file).
    pause = {"COTGEN_PAUSE_AT": "shard-renamed:2", "COTGEN_PAUSE_SECONDS": "6"}
    proc = driver(ray_cluster, tiny_model_dir, out, "--limit", limit, "--concurrency", 2, "--shard-trees", 1,
                  "--workers", 2, "--ray-address", ray_cluster.address, "--json", "--quiet", env=pause)

    def both_working() -> bool:  # each worker has written a shard: both hold problems now
        tags = {TREE_SHARD.match(p.name)["tag"] for p in shard_paths(out)}
        return len(tags) == 2 and len(ray_cluster.worker_pids()) == 2

    wait_until(both_working, proc, "a shard from each worker")
    assert len(shard_paths(out)) <= limit - 4, "the run got too far to test a kill mid-run"
    victim = ray_cluster.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    code, stdout, err = finish(proc)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["worker_deaths"] == 1 and summary["requeued"] >= 1, (summary, err[-2000:])
    assert sorted(ids_once(out)) == sorted(summary_ids(out, limit))
    assert read_manifest(out)["counts"]["trees"] == limit
    assert victim not in ray_cluster.worker_pids()


def summary_ids(out: Path, limit: int) -> list[str]:
    from cotgen.problems import load_problems

    return [p.id for p in load_problems("builtin:arith", limit=limit).problems]


@pytest.mark.parametrize(("sig", "ignore_sigint", "code"),
                         [(signal.SIGINT, False, 130), (signal.SIGTERM, False, 143), (signal.SIGTERM, True, 143)],
                         ids=["ctrl-c", "sigterm", "sigterm-sigint-ignored"])
def test_a_signalled_driver_saves_finished_trees(ray_cluster, tiny_model_dir, tmp_path, sig, ignore_sigint, code):
    out = tmp_path / "run"
    # The tiny model searches a tree in tens of milliseconds, so a signal sent late on a busy
    # machine could find the 40 trees done (as it did in the local runs). The driver pauses after
    # recording the first shard (a test hook), and the workers cannot go on past the
    # problems it has handed them, so the signal surely comes mid-run.
    pause = {"COTGEN_PAUSE_AT": "manifest-written:1", "COTGEN_PAUSE_SECONDS": "5"}
    proc = driver(ray_cluster, tiny_model_dir, out, "--limit", 40, "--concurrency", 2, "--shard-trees", 4,
                  "--workers", 2, "--ray-address", ray_cluster.address, "--quiet", ignore_sigint=ignore_sigint,
                  env=pause)
    wait_until(lambda: len(shard_paths(out)) >= 1, proc, "a shard")
    os.killpg(proc.pid, sig)  # SIGINT: as Ctrl-C in a terminal does
    got, _, err = finish(proc, timeout=180)
    # As a local run: 143 on SIGTERM (over the handler ray.init sets), 130 on Ctrl-C.
    assert got == code, err
    assert "Traceback" not in err and "run the same command again" in err
    saved = ids_once(out)
    assert 1 <= len(saved) < 40
    # Every shard on disk, those the stopping workers wrote included, is in the manifest.
    assert read_manifest(out)["counts"]["trees"] == len(saved)
    assert sorted(s["name"] for s in read_manifest(out)["shards"]) == [p.name for p in shard_paths(out)]


def test_resume_after_the_driver_is_killed(ray_cluster, tiny_model_dir, tmp_path, request):
    import psutil

    out = tmp_path / "run"
    limit = 10
    proc = driver(ray_cluster, tiny_model_dir, out, "--limit", limit, "--concurrency", 2, "--shard-trees", 1,
                  "--workers", 2, "--ray-address", ray_cluster.address, "--quiet")
    wait_until(lambda: len(shard_paths(out)) >= 2, proc, "two shards")
    workers = ray_cluster.worker_pids()
    proc.kill()
    proc.communicate(timeout=60)
    # Ray ends a dead driver's actors: no old worker may write a shard behind the rerun's back.
    deadline = time.monotonic() + 60
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in workers):
        assert time.monotonic() < deadline, "the dead driver's workers lived on"
        time.sleep(0.2)
    before = ids_once(out)
    assert 2 <= len(before) <= limit
    # The rerun starts its own local cluster (no --ray-address): the default path, on 127.0.0.1.
    # RAY_TMPDIR keeps its session files out of /tmp/ray (short: Ray's socket paths are limited).
    ray_tmp = tempfile.mkdtemp(prefix="cgr", dir="/tmp")
    request.addfinalizer(lambda: shutil.rmtree(ray_tmp, ignore_errors=True))
    rerun = driver(ray_cluster, tiny_model_dir, out, "--limit", limit, "--concurrency", 2, "--shard-trees", 1,
                   "--workers", 1, "--json", "--quiet", env={"RAY_TMPDIR": ray_tmp})
    spawned: set[int] = set()
    while rerun.poll() is None:
        try:
            spawned.update(p.pid for p in psutil.Process(rerun.pid).children(recursive=True))
            for p in psutil.Process(rerun.pid).children(recursive=True):
                for c in p.net_connections(kind="inet"):
                    if c.status == psutil.CONN_LISTEN:
                        assert c.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1"), (p.cmdline(), c)
        except psutil.Error:
            pass
        time.sleep(0.3)
    code, stdout, err = finish(rerun)
    kill_tree(sorted(spawned))  # the cluster it started is gone with it; make sure by PID
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["already_done"] == len(before)
    assert sorted(ids_once(out)) == sorted(summary_ids(out, limit))
    assert read_manifest(out)["counts"]["trees"] == limit


def test_a_worker_that_keeps_dying_ends_the_run_with_a_clear_error(ray_cluster, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    proc = driver(ray_cluster, tiny_model_dir, out, "--limit", 30, "--concurrency", 2, "--shard-trees", 1,
                  "--workers", 1, "--worker-restarts", 1, "--ray-address", ray_cluster.address, "--quiet")
    killed: set[int] = set()
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        for pid in ray_cluster.worker_pids():
            if pid not in killed:
                killed.add(pid)
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    code, _, err = finish(proc, timeout=60)
    assert code == 1, err
    assert "Ray worker 0 died 2 times" in err and "Traceback" not in err
    assert len(killed) == 2


def test_an_engine_that_cannot_be_built_is_reported_once(ray_cluster, tmp_path):
    proc = driver(ray_cluster, tmp_path / "no-such-model", tmp_path / "run", "--limit", 2, "--workers", 2,
                  "--ray-address", ray_cluster.address, "--quiet")
    code, _, err = finish(proc, timeout=200)
    assert code == 1, err
    assert "could not start its engine" in err and "no-such-model" in err and "Traceback" not in err
