"""Run every benchmark (or those named on the command line), merge their figures into
bench/results.json (one flat object) and print a table.

Each bench/bench_<name>.py has `run(work: Path) -> dict[str, float]`.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).parent
RESULTS = HERE / "results.json"


def main(argv: list[str]) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    wanted = [n for n in names if not argv or n in argv]
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    console = Console(stderr=True)
    work = HERE / "work"
    work.mkdir(exist_ok=True)
    for name in wanted:
        console.print(f"[bold]bench {name}[/]")
        t0 = time.perf_counter()
        module = importlib.import_module(f"bench.bench_{name}")
        figures = module.run(work / name)
        results.update(figures)
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        console.print(f"  done in {time.perf_counter() - t0:.1f}s")
    table = Table(title="make bench")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in sorted(results):
        value = results[key]
        table.add_row(key, f"{value:,.3f}" if isinstance(value, float) else str(value))
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
