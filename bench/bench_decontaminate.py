"""Decontaminate throughput and peak memory: a PRM export of 1M rows (BENCH_DECON_ROWS) checked
against the built-in benchmarks shipped with cotgen (MATH-500, GSM8K test).

Each row's prompt is a fresh arithmetic word problem, or (1 in 100) a MATH-500 / GSM8K test
question with its case and whitespace changed; each has three ~150-character steps. 100,000
rows are run as well, so the two peaks show whether memory grows with the input. The runs are
subprocesses, so each peak RSS (ru_maxrss) is its own.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

PLANT_EVERY = 100


def _make_input(path: Path, rows: int) -> int:
    """Write the export; returns how many benchmark questions were planted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cotgen.benchmarks import load_benchmark
    from cotgen.problems import load_problems

    rng = random.Random(0)
    bench = [item.question for name in ("math500", "gsm8k") for item in load_benchmark(name)]
    fresh = [p.question for p in load_problems("builtin:arith", limit=50_000, seed=1)]
    steps = [f"Step {i}: we multiply the {i} boxes by their count and add what was left over, " * 2 for i in range(50)]
    planted = 0
    writer = None
    prompts: list[str] = []
    for i in range(rows):
        if i % PLANT_EVERY == 7:
            q = rng.choice(bench)
            prompts.append(q.upper() if i % 2 else "  ".join(q.split()))
            planted += 1
        else:
            prompts.append(fresh[i % len(fresh)])
        if len(prompts) == 50_000 or i == rows - 1:
            n = len(prompts)
            table = pa.table({
                "prompt": prompts,
                "completions": [[steps[(j + k) % 50] for k in range(3)] for j in range(n)],
                "labels": [[True, True, j % 3 != 0] for j in range(n)],
            })
            writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
            prompts = []
    writer.close()
    return planted


# CPU time (this process) is the figure to judge by on a shared machine; wall time beside it.
_CHILD = """
import json, resource, sys, time
from pathlib import Path
import pyarrow, pyarrow.parquet
from cotgen.decontaminate import decontaminate
c0, t0 = time.process_time(), time.perf_counter()
report = decontaminate([Path(sys.argv[1])], Path(sys.argv[2]), ["math500", "gsm8k"])
cpu, wall = time.process_time() - c0, time.perf_counter() - t0
print(json.dumps({"cpu": cpu, "wall": wall, "rows": report.rows, "removed": len(report.removed),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _measure(work: Path, rows: int) -> dict[str, float]:
    src = work / f"input-{rows}" / "train-00000-of-00001.parquet"
    planted_file = src.parent / "planted.txt"
    if not planted_file.exists():
        src.parent.mkdir(parents=True, exist_ok=True)
        planted_file.write_text(str(_make_input(src, rows)))
    out = work / f"out-{rows}"
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(out)], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["removed"] != int(planted_file.read_text()):
        raise SystemExit(f"decontaminate removed {result['removed']} rows, {planted_file.read_text()} were planted")
    shutil.rmtree(out, ignore_errors=True)
    return result


def run(work: Path) -> dict[str, float]:
    rows = int(os.environ.get("BENCH_DECON_ROWS", "1000000"))
    tag = "1m" if rows == 1_000_000 else f"{rows // 1000}k"
    work.mkdir(parents=True, exist_ok=True)
    small = _measure(work, 100_000)
    big = _measure(work, rows)
    return {
        f"decontaminate_rows_per_s_{tag}": big["rows"] / big["cpu"],  # rows per CPU second
        f"decontaminate_rows_per_s_wall_{tag}": big["rows"] / big["wall"],
        f"decontaminate_peak_mb_{tag}": big["peak_mb"],
        "decontaminate_peak_mb_100k": small["peak_mb"],
    }
