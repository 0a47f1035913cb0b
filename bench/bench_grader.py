"""Grader speed: MATH500 gold answers checked against their own reference solutions."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# COTGEN_BENCH_GRADER_N bounds the rows for a quick run; the default is all 500.
ROWS = int(os.environ.get("COTGEN_BENCH_GRADER_N", "500"))


def run(work: Path) -> dict[str, float]:
    from cotgen import verify

    shared = Path(os.environ.get("COTGEN_SHARED", REPO.parent / "shared"))
    path = shared / "data" / "math500_test.jsonl"
    if not path.is_file():
        raise SystemExit(f"bench grader: {path} is absent (set COTGEN_SHARED)")
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][:ROWS]

    verify.grade("\\boxed{1}", "1")  # imports math-verify and sympy outside the timing
    latencies: list[float] = []
    agree = 0
    t0 = time.perf_counter()
    for row in rows:
        # Cold: nothing cached, so each check parses both sides as a new search would.
        verify._parse.cache_clear()
        start = time.perf_counter()
        agree += verify.grade(row["solution"], row["answer"]).correct is True
        latencies.append((time.perf_counter() - start) * 1000)
    total = time.perf_counter() - t0
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return {
        "grader_checks_per_s": len(rows) / total,
        "grader_latency_ms_p50": statistics.median(latencies),
        "grader_latency_ms_p99": p99,
        "grader_math500_agreement": agree / len(rows),
    }
