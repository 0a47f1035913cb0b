"""Whole-solution sampling on held-out builtin:arith problems through a real cotgen engine:
greedy accuracy, and the samples best-of-N draws from."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from cotgen.engines.base import Completion, Engine, GenerationParams
from cotgen.policy import Prompts, load_prompts
from cotgen.problems import Problem, load_problems
from cotgen.reasoner.arith import label_path
from cotgen.reasoner.data import EVAL_SEED, TRAIN_SEEDS
from cotgen.tree import Tree, solution_steps
from cotgen.verify import grade

SOLUTION_TOKENS = 128  # a worked solution is ~40 tokens; this leaves room for a rambling one


def held_out_problems(n: int, seed: int = EVAL_SEED, skip: int = 0) -> list[Problem]:
    """`n` builtin:arith problems of a seed no training example came from (>= 1000)."""
    if seed < TRAIN_SEEDS.stop:
        raise ValueError(f"evaluation seeds must be >= {TRAIN_SEEDS.stop}, not {seed}")
    return list(load_problems("builtin:arith", seed=seed, limit=n, skip=skip))


def solution_prompt(engine: Engine, prompts: Prompts, question: str) -> str:
    """What the policy asks at the root (the step template), left to run to the end:
    the same prompt a rollout starts from."""
    return engine.render_chat(
        [
            {"role": "system", "content": prompts.texts["system"]},
            {"role": "user", "content": prompts.render("step", problem=question, hint="")},
        ]
    )


@dataclass(frozen=True)
class Sample:
    text: str
    tokens: int
    answer: str | None  # the extracted final answer, None when it states none
    correct: bool


async def sample_solutions(
    engine: Engine,
    problems: list[Problem],
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    max_tokens: int = SOLUTION_TOKENS,
    prompts: Prompts | None = None,
) -> list[list[Sample]]:
    """`n` whole solutions per problem (greedy at temperature 0), graded against the gold."""
    prompts = prompts or load_prompts()
    texts = [solution_prompt(engine, prompts, p.question) for p in problems]
    params = GenerationParams(n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    results: list[list[Completion]] = await engine.generate(texts, params)
    out = []
    for p, comps in zip(problems, results, strict=True):
        row = []
        for c in comps:
            g = grade(c.text, p.answer)
            row.append(Sample(c.text, c.tokens, g.answer, bool(g.correct)))
        out.append(row)
    return out


def greedy_accuracy(engine: Engine, problems: list[Problem]) -> float:
    """Share of `problems` whose greedy whole solution ends with the right answer."""
    samples = asyncio.run(sample_solutions(engine, problems))
    return sum(s[0].correct for s in samples) / len(samples)


def bon_at(samples: list[tuple[int, str | None, bool]], budget: float, enough: int = 0) -> tuple[bool, bool, int, int]:
    """(pass@N, majority vote correct, tokens used, samples taken) over the samples started
    within budget, stopping once `enough` are correct (0: never); a sample is (tokens,
    extracted answer, correct)."""
    taken, spent, right = [], 0, 0
    for s in samples:
        if spent >= budget or (enough and right >= enough):
            break
        taken.append(s)
        spent += s[0]
        right += s[2]
    passed = any(s[2] for s in taken)
    counts = Counter(s[1] for s in taken if s[1] is not None)
    majority = False
    if counts:
        top = max(counts.values())
        winner = next(s[1] for s in taken if s[1] is not None and counts[s[1]] == top)  # first to reach the top
        majority = next(s[2] for s in taken if s[1] == winner)
    return passed, majority, spent, len(taken)


# -- step truth: ProcessBench's measure of step ratings ---------------------------------


def path_errors(tree: Tree) -> list[tuple[int | None, int | None]]:
    """Per terminal leaf: (index of the earliest wrong step by exact truth, index of the
    earliest step cotgen rated negative), None when there is none (ProcessBench)."""
    kids = tree.children()
    out = []
    for leaf in (n for n in tree.nodes if n.terminal and not kids[n.id]):
        steps = solution_steps(tree.path_to(leaf.id))
        truth = label_path(tree.problem, [s.text for s in steps])
        wrong = next((i for i, v in enumerate(truth) if not v.correct), None)
        rated = next((i for i, s in enumerate(steps) if s.rating == "negative"), None)
        out.append((wrong, rated))
    return out


def processbench_f1(pairs: list[tuple[int | None, int | None]]) -> dict[str, float]:
    """Accuracy on paths with an error (the earliest error found exactly), on paths without
    (nothing flagged), and their harmonic mean."""
    err = [p for p in pairs if p[0] is not None]
    ok = [p for p in pairs if p[0] is None]
    acc_err = sum(w == r for w, r in err) / len(err) if err else 0.0
    acc_ok = sum(r is None for _, r in ok) / len(ok) if ok else 0.0
    f1 = 2 * acc_err * acc_ok / (acc_err + acc_ok) if acc_err + acc_ok else 0.0
    return {"f1": f1, "acc_error_paths": acc_err, "acc_correct_paths": acc_ok, "error_paths": len(err), "correct_paths": len(ok)}


def rating_f1(trees: list[Tree]) -> float:
    """ProcessBench F1 of the trees' step ratings against exact step truth."""
    return processbench_f1([p for t in trees for p in path_errors(t)])["f1"]
