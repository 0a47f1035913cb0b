"""Evaluation benchmarks: which datasets and splits are one (so loading them for training
warns), and the question texts `decontaminate` checks against.

MATH-500 and the GSM8K test split are MIT-licensed and ship in data/ with their licences,
so the common check works offline; the other built-in names load through `datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cotgen.benchmark_names import KNOWN_BENCHMARKS, KnownBenchmark, benchmark_split
from cotgen.errors import RunError, UsageError

__all__ = ["KNOWN_BENCHMARKS", "KnownBenchmark", "benchmark_split"]  # and the loaders below

DATA = Path(__file__).parent / "data"


# -- built-in decontamination benchmarks --------------------------------------------------


@dataclass(frozen=True)
class BuiltinBenchmark:
    """A benchmark `--against NAME` takes: a packaged file, or a dataset loaded through `datasets`."""

    name: str
    question: str  # the column holding the question
    file: str | None = None  # under data/: shipped with the package
    dataset: str | None = None
    config: str | None = None
    split: str = "test"


# The set open-r1's scripts/decontaminate.py checks, plus GSM8K, AMC, OlympiadBench and MATH.
BUILTIN_BENCHMARKS = {
    b.name: b
    for b in (
        BuiltinBenchmark("math500", "problem", file="math500_test.jsonl"),
        BuiltinBenchmark("gsm8k", "question", file="gsm8k_test.jsonl"),
        BuiltinBenchmark("aime24", "problem", dataset="HuggingFaceH4/aime_2024", split="train"),
        BuiltinBenchmark("aime25", "problem", dataset="yentinglin/aime_2025", split="train"),
        BuiltinBenchmark("amc23", "problem", dataset="AI-MO/aimo-validation-amc", split="train"),
        BuiltinBenchmark("math", "problem", dataset="DigitalLearningGmbH/MATH-lighteval", split="test"),
        BuiltinBenchmark("olympiadbench", "question", dataset="Hothan/OlympiadBench",
                         config="OE_TO_maths_en_COMP", split="train"),
        BuiltinBenchmark("gpqa", "Question", dataset="Idavidrein/gpqa", config="gpqa_diamond", split="train"),
        BuiltinBenchmark("lcb", "question_content", dataset="livecodebench/code_generation_lite", split="test"),
    )
}
# Names users type for the same benchmark.
_ALIASES = {"math-500": "math500", "gsm8k-test": "gsm8k", "aime_2024": "aime24", "aime_2025": "aime25",
            "amc": "amc23", "livecodebench": "lcb", "gpqa_diamond": "gpqa"}
BENCH_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class BenchmarkItem:
    """One benchmark question: `where` says which (`math500#12`, `my.jsonl#line 3`)."""

    benchmark: str
    where: str
    question: str


def load_benchmark(spec: str) -> list[BenchmarkItem]:
    """The questions of `spec`: a built-in name (see BUILTIN_BENCHMARKS) or a local
    .jsonl / .json / .parquet file with a question column."""
    name = _ALIASES.get(spec.lower(), spec.lower())
    if name in BUILTIN_BENCHMARKS:
        bench = BUILTIN_BENCHMARKS[name]
        if bench.file is not None:
            return _file_items(DATA / bench.file, bench.name, bench.question)
        return _dataset_items(bench)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() not in BENCH_FILE_SUFFIXES:
            raise UsageError(f"benchmark {spec}: a benchmark file is .jsonl, .json or .parquet, not '{path.suffix}'")
        return _file_items(path, path.name, None)
    if path.is_dir():
        raise UsageError(f"benchmark {spec}: a folder; give one .jsonl, .json or .parquet file of its questions")
    raise UsageError(
        f"benchmark {spec}: no such file, and not a built-in benchmark "
        f"(built-in: {', '.join(BUILTIN_BENCHMARKS)})"
    )


def _file_items(path: Path, label: str, question_field: str | None) -> list[BenchmarkItem]:
    """Every question of a file, read like a --problems file (rows without one are skipped)."""
    from cotgen.problems import QUESTION_FIELDS, load_problems

    fields = (question_field,) if question_field else (*QUESTION_FIELDS, "Question", "question_content")
    found = _question_field(path, fields) if question_field is None else question_field
    problems = load_problems(str(path), question_field=found)
    # A problem's source is FILE#N: keep the N, under the benchmark's name.
    return [BenchmarkItem(label, f"{label}#{p.source.rsplit('#', 1)[-1]}", p.question) for p in problems]


def _question_field(path: Path, fields: tuple[str, ...]) -> str | None:
    """The first of `fields` the file's first row has (None: let load_problems guess and explain)."""
    from cotgen.io.readers import BadRow, open_reader

    for batch in open_reader(path).batches():
        for row in batch.rows:
            if isinstance(row, dict) and not isinstance(row, BadRow):
                return next((f for f in fields if f in row), None)
    return None


def _dataset_items(bench: BuiltinBenchmark) -> list[BenchmarkItem]:
    import datasets
    from huggingface_hub import constants

    try:
        ds = datasets.load_dataset(bench.dataset, bench.config, split=bench.split)
    except Exception as exc:
        if constants.HF_HUB_OFFLINE or "offline" in str(exc).lower() or "connect" in str(exc).lower():
            raise RunError(
                f"benchmark {bench.name} ({bench.dataset}) is not in the local datasets cache and the Hub "
                "cannot be reached: run once with network access to cache it, or pass the benchmark as a "
                f".jsonl / .json / .parquet file (math500 and gsm8k ship with cotgen and always work)"
            ) from None
        raise RunError(f"benchmark {bench.name} ({bench.dataset}) could not be loaded ({type(exc).__name__}: {exc})") from None
    if bench.question not in ds.column_names:
        raise RunError(f"benchmark {bench.name} ({bench.dataset}): no '{bench.question}' column "
                       f"(the columns are {', '.join(ds.column_names)})")
    return [BenchmarkItem(bench.name, f"{bench.name}#{i}", q)
            for i, q in enumerate(ds[bench.question]) if isinstance(q, str) and q.strip()]
