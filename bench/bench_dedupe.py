"""Dedupe throughput and peak memory: N rows of ~2 KB OpenLongCoT-like text with planted copies,
at two sizes so that growth shows: 100,000 rows (`dedupe_*`) and 1,000,000 (`dedupe_*_1m`).

BENCH_ROWS sets the small N (default 100,000; 10,000 while developing), BENCH_ROWS_LARGE the
large one (default 1,000,000; 0 skips it: ~2 GB of text, a few minutes on two cores). Each
dedupe runs in a subprocess so its peak RSS (ru_maxrss) is its own, not the generator's.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

WORDS = [f"tok{i}" for i in range(20000)]


def _make_input(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    writer = None
    texts: list[str] = []
    originals: list[str] = []
    for i in range(rows):
        kind = rng.random()
        if originals and kind < 0.05:
            text = rng.choice(originals)  # exact copy
        elif originals and kind < 0.10:
            words = rng.choice(originals).split()
            for pos in rng.sample(range(len(words)), 3):
                words[pos] = "edited"
            text = " ".join(words)  # near copy
        else:
            text = " ".join(rng.choices(WORDS, k=300))  # ~2 KB
            if len(originals) < 1000:
                originals.append(text)
        texts.append(text)
        if len(texts) == 10000 or i == rows - 1:
            table = pa.table({"text": texts})
            writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
            texts = []
    writer.close()


# The machine is shared, so CPU time (process_time: this process, all its threads) is the
# figure to judge by; wall time is reported next to it. Imports happen before the clocks start.
_CHILD = """
import json, resource, sys, time
from pathlib import Path
import numpy, pyarrow, pyarrow.parquet, rensa
from cotgen.dedupe import dedupe
c0, t0 = time.process_time(), time.perf_counter()
report = dedupe([Path(sys.argv[1])], Path(sys.argv[2]))
cpu, wall = time.process_time() - c0, time.perf_counter() - t0
print(json.dumps({"cpu": cpu, "wall": wall, "rows": report.rows, "kept": report.kept,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _measure(work: Path, rows: int) -> dict[str, float]:
    src = work / f"input-{rows}" / "train-00000-of-00001.parquet"
    if not src.exists():
        src.parent.mkdir(parents=True, exist_ok=True)
        _make_input(src, rows)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(out)], capture_output=True, text=True, check=True)
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(work: Path) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float] = {}
    sizes = [("", int(os.environ.get("BENCH_ROWS", "100000"))),
             ("_1m", int(os.environ.get("BENCH_ROWS_LARGE", "1000000")))]
    for suffix, rows in sizes:
        if rows <= 0:
            continue
        result = _measure(work, rows)
        figures.update({
            f"dedupe_rows_per_s{suffix}": result["rows"] / result["cpu"],  # CPU-based: rows per CPU second
            f"dedupe_rows_per_s_wall{suffix}": result["rows"] / result["wall"],
            f"dedupe_peak_mb{suffix}": result["peak_mb"],
        })
    return figures
