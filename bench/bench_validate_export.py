"""Benchmark: validate and export throughput on generated OpenLongCoT rows, and validate's peak memory."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

# 100,000 rows as the issue asks; BENCH_ROWS=10000 for a quick look while developing.
ROWS = int(os.environ.get("BENCH_ROWS", "100000"))
SEED = 1234
CHUNK = 5000  # trees per tree shard

_WORDS = (
    "we the of add multiply so then total each number gives step check answer is "
    "apples per hour miles cost sum twice half remaining equals therefore first next"
).split()


def _sentences(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 12))]
        out.append(" ".join(words).capitalize() + f" {rng.randint(2, 999)} * {rng.randint(2, 99)}.")
    return out


def make_trees(n: int, rng: random.Random):
    """Random sound trees of about 6 nodes; as OpenLongCoT rows they are about 1.5 KB."""
    from cotgen.tree import Tree

    pool = _sentences(rng, 4000)
    for i in range(n):
        t = Tree.new(f"Problem {i}: " + rng.choice(pool) + " " + rng.choice(pool), str(i))
        parents = [0]
        for _ in range(rng.randint(3, 5)):
            parent = rng.choice(parents)
            good = rng.random() < 0.6
            node = t.add(parent, "step", rng.choice(pool), rating="positive" if good else "negative",
                         value=rng.random(), visits=rng.randint(1, 9))
            parents.append(node.id)
            if rng.random() < 0.2:
                t.add(node.id, "critic", rng.choice(pool))
        t.add(parents[-1], "conclusion", f"So the answer is \\boxed{{{i}}}.", terminal=True,
              correct=True, rating="positive", value=1.0, visits=1)
        yield t


_CHILD = """
import sys, json
from cotgen.validate import validate_path
rows = sum(validate_path(p).rows for p in sys.argv[1:])
peak = 0.0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) / 1024
print(json.dumps({"rows": rows, "peak_mb": peak}))
"""


def _peak_validate_mb(files: list[Path]) -> float:
    """Peak resident memory of a fresh process validating `files` (imports included)."""
    res = subprocess.run([sys.executable, "-c", _CHILD, *map(str, files)], capture_output=True, text=True, check=True)
    return json.loads(res.stdout)["peak_mb"]


def run(work: Path) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cotgen.export import export
    from cotgen.formats.openlongcot import OpenLongCoTFormat
    from cotgen.io.writers import BATCH_ROWS, TreeShardWriter
    from cotgen.validate import validate_path

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = random.Random(SEED)
    writer = TreeShardWriter(work / "run")
    batch = []
    for tree in make_trees(ROWS, rng):
        batch.append(tree)
        if len(batch) == CHUNK:
            writer.write(batch)
            batch = []
    writer.write(batch)

    # Rows per second per core: CPU seconds of this process, so that other work on a
    # shared machine does not count; wall-clock figures are kept beside them.
    w0, c0 = time.perf_counter(), time.process_time()
    summary = export([work / "run"], OpenLongCoTFormat(), work / "ol")
    export_wall, export_cpu = time.perf_counter() - w0, time.process_time() - c0
    assert summary.rows_written == ROWS, summary.as_json()
    shards = [work / "ol" / name for name in summary.shards]

    w0, c0 = time.perf_counter(), time.process_time()
    reports = [validate_path(p) for p in shards]
    validate_wall, validate_cpu = time.perf_counter() - w0, time.process_time() - c0
    assert sum(r.rows for r in reports) == ROWS and all(r.ok for r in reports), reports[0].errors[:3]

    # A tenth of the rows in a file of its own, with row groups of the size export
    # writes, to compare peak memory against.
    small = work / "small.parquet"
    table = pq.read_table(shards[0], columns=["text"]).slice(0, ROWS // 10)
    pq.write_table(pa.table({"text": table.column("text")}), small, compression="zstd", row_group_size=BATCH_ROWS)
    mean_bytes = sum(len(t) for t in table.column("text").to_pylist()) / max(1, table.num_rows)
    print(f"  {ROWS:,} rows, mean {mean_bytes:,.0f} characters, {len(shards)} shard(s)", file=sys.stderr)

    return {
        "validate_rows_per_s": ROWS / validate_cpu,
        "export_rows_per_s": ROWS / export_cpu,
        "validate_rows_per_s_wall": ROWS / validate_wall,
        "export_rows_per_s_wall": ROWS / export_wall,
        "validate_peak_mb_100k": _peak_validate_mb(shards),
        "validate_peak_mb_10k": _peak_validate_mb([small]),
    }
