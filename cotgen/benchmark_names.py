"""Which datasets and splits are evaluation benchmarks, by name: what cotgen.problems tags a
loaded split with (so loading one for training warns). Kept out of cotgen.benchmarks, which
reads benchmark files through cotgen.problems: problems imports this module, benchmarks
imports problems, and neither imports the other back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownBenchmark:
    """A benchmark as a dataset id: loading one of `splits` (None: any split) for training warns."""

    name: str
    ids: tuple[str, ...]  # lowercase: a full dataset id, or the last part of one (a local copy's folder)
    splits: tuple[str, ...] | None


# Only distinctive names are matched on their last part: "math" alone names many training sets.
KNOWN_BENCHMARKS = (
    KnownBenchmark("GSM8K", ("openai/gsm8k", "gsm8k"), ("test",)),
    KnownBenchmark("MATH-500", ("huggingfaceh4/math-500", "math-500", "math500"), None),
    KnownBenchmark("MATH", ("hendrycks/competition_math", "competition_math", "eleutherai/hendrycks_math",
                            "hendrycks_math", "lighteval/math", "digitallearninggmbh/math-lighteval",
                            "math-lighteval"), ("test",)),
    KnownBenchmark("AIME", ("huggingfaceh4/aime_2024", "aime_2024", "aime_2025", "aime24", "aime25",
                            "aime2024", "aime2025", "aime-2024", "aime-2025", "aimo-validation-aime"), None),
    KnownBenchmark("AMC", ("ai-mo/aimo-validation-amc", "aimo-validation-amc", "amc23", "amc_2023", "amc2023"), None),
    KnownBenchmark("OlympiadBench", ("hothan/olympiadbench", "olympiadbench"), None),
    KnownBenchmark("Omni-MATH", ("kbsdjames/omni-math", "omni-math"), None),
    KnownBenchmark("Minerva Math", ("math-ai/minervamath", "minervamath"), None),
    KnownBenchmark("GPQA", ("idavidrein/gpqa", "gpqa", "gpqa_diamond", "gpqa-diamond"), None),
    KnownBenchmark("LiveCodeBench", ("livecodebench/code_generation_lite", "livecodebench/code_generation",
                                     "code_generation_lite"), None),
    KnownBenchmark("MMLU", ("cais/mmlu", "mmlu", "hendrycks_test"), ("test", "validation", "dev")),
    KnownBenchmark("MMLU-Pro", ("tiger-lab/mmlu-pro", "mmlu-pro"), ("test",)),
    KnownBenchmark("HumanEval", ("openai/openai_humaneval", "openai_humaneval", "humaneval"), None),
    KnownBenchmark("MBPP", ("google-research-datasets/mbpp", "mbpp"), ("test",)),
    KnownBenchmark("ARC", ("allenai/ai2_arc", "ai2_arc"), ("test",)),
)


def benchmark_split(dataset: str, split: str) -> str | None:
    """The benchmark `dataset`'s `split` is (e.g. "GSM8K test"), or None when it is none."""
    lowered = dataset.lower().rstrip("/")
    last = lowered.rsplit("/", 1)[-1]
    for known in KNOWN_BENCHMARKS:
        if lowered in known.ids or last in known.ids:
            if known.splits is None:
                return known.name
            if split.lower() in known.splits:
                return f"{known.name} {split}"
    return None
