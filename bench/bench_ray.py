"""Trees per second on Ray: one worker, then two, on the tiny model, one torch thread each.

Figures:
- ray_trees_per_s_1w, ray_trees_per_s_2w: trees finished per second from the moment every
  worker is up to the last shard (cluster start-up and the workers' start skew excluded; the
  tail, where a worker runs out of problems, included), median of REPEATS; workers run at
  this process's priority (RAY_worker_niceness=0), as the in-process baseline does.
- ray_scaling_2w: their ratio. Two workers on this 2-core machine: the ideal is 2.0; what
  is lost goes to the driver, Ray's own processes and whatever else shares the cores.
- ray_local_trees_per_s: the same problems in one local run, one thread, no Ray: what a
  single worker costs over an in-process run.

Each figure starts its own local Ray cluster on 127.0.0.1 (no dashboard, no token file).
BENCH_QUICK=1 runs a small size for development.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from pathlib import Path

PROBLEMS = 160  # trees per run; enough that start skew and the tail are small parts of it
CONCURRENCY = 8  # trees in flight per worker
REPEATS = 3


def _run(work: Path, model: Path, workers: int | None, n: int | None = None) -> float:
    from cotgen.engines.config import EngineConfig
    from cotgen.executors.ray_cluster import RayConfig
    from cotgen.search import SearchConfig
    from cotgen.synthesize import RunConfig, run

    shutil.rmtree(work, ignore_errors=True)
    n = n or int(os.environ.get("BENCH_RAY_PROBLEMS", PROBLEMS))
    opts = RunConfig(problems="builtin:arith", out=work, limit=n, concurrency=CONCURRENCY, shard_trees=16)
    search = SearchConfig(simulations=4, max_tokens=24, max_step_tokens=12)
    engine = EngineConfig(model=str(model), cpu_threads=1, max_batch=16)
    if workers is None:
        s = run(opts, search, engine)
        return s.trees / s.seconds  # from the engine loaded to the last shard
    s = run(opts, search, engine, ray=RayConfig(workers=workers, cpus_per_worker=1))
    assert s.trees == n and s.worker_deaths == 0, s
    if not s.steady_trees_per_s:
        raise RuntimeError(f"the run of {n} problems ended before all {workers} workers were up; "
                           "raise BENCH_RAY_PROBLEMS")
    return s.steady_trees_per_s


def run(work: Path) -> dict[str, float]:
    from cotgen.tiny_model import build_tiny_model

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # loopback only: no token file in ~/.ray
    # Ray starts workers 15 nice levels below their raylet; on a shared machine that starves
    # them against the in-process baseline, which runs at this process's priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    quick = os.environ.get("BENCH_QUICK") == "1"
    if quick:
        os.environ.setdefault("BENCH_RAY_PROBLEMS", "96")
    work.mkdir(parents=True, exist_ok=True)
    model = work / "tiny-model"
    if not (model / "config.json").exists():
        build_tiny_model(model)
    # Ray's session files under a short path of our own: its socket paths are length-limited.
    ray_tmp = tempfile.mkdtemp(prefix="cgbench", dir="/tmp")
    os.environ["RAY_TMPDIR"] = ray_tmp
    try:
        # Imports, the grader's parser and the engine's first calls warm up once in this
        # process; a Ray worker's start-up (excluded from its figure) does the same for it.
        _run(work / "warm", model, None, n=8)
        local, one, two = [], [], []
        for _ in range(1 if quick else REPEATS):  # interleaved: the machine's load drifts
            local.append(_run(work / "local", model, None))
            one.append(_run(work / "w1", model, 1))
            two.append(_run(work / "w2", model, 2))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    w1, w2 = statistics.median(one), statistics.median(two)
    return {
        "ray_local_trees_per_s": round(statistics.median(local), 3),
        "ray_trees_per_s_1w": round(w1, 3),
        "ray_trees_per_s_2w": round(w2, 3),
        "ray_scaling_2w": round(w2 / w1, 3),
    }
