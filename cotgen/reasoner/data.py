"""Training examples for tiny-reasoner: every meta action the search asks for, rendered with
the policy's own prompts (cotgen/prompts/), from builtin:arith problems of seeds below 1000."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from cotgen.policy import NO_STEPS, STEP_STOP, Prompts, load_prompts
from cotgen.problems import load_problems
from cotgen.reasoner.arith import ANSWER_STEP, OP_NAMES, ArithProblem, Op, parse_problem

TRAIN_SEEDS = range(0, 1000)  # problem seeds training may draw from; every evaluation uses >= 1000
HELD_OUT_SEEDS = range(1000, 1100)  # their first HELD_OUT_PER_SEED questions never reach training
HELD_OUT_PER_SEED = 500
EVAL_SEED = 1000  # evaluations draw builtin:arith?seed=1000 (and upward) problems

# Share of each meta action among training examples. Steps dominate: the whole solution is
# one example and every step in it is a target; the others train one short answer each.
MIX = (("solve", 0.55), ("judge", 0.2), ("critic", 0.08), ("refine", 0.08), ("conclusion", 0.09))
# The shipped model's later phases add the arithmetic drill: a tiny model's errors are nearly
# all in the results of its steps (a * b first, then three-digit sums), and a drill example
# packs ~24 of them into ~250 tokens, where a solve example spends ~130 tokens (~90 of them
# prompt) on 3. Phase 2 drills multiplication ("times"), phase 3 sums ("sums").
PHASE2_MIX = (
    ("solve", 0.4), ("times", 0.3), ("drill", 0.1), ("judge", 0.1), ("critic", 0.03), ("refine", 0.03),
    ("conclusion", 0.04),
)
PHASE3_MIX = (
    ("solve", 0.35), ("sums", 0.3), ("times", 0.1), ("judge", 0.1), ("critic", 0.05), ("refine", 0.05),
    ("conclusion", 0.05),
)
MIXES = {"phase1": MIX, "phase2": PHASE2_MIX, "phase3": PHASE3_MIX}
KINDS = ("solve", "judge", "critic", "refine", "conclusion", "drill", "times", "sums")
DRILL_PROBLEMS = 8  # problems whose operations one drill example packs

CORRECT_CRITIC = "The step is correct."
SEP = STEP_STOP[0]  # steps end at a blank line, exactly as the policy stops them


def chatml(system: str, user: str) -> str:
    """The prompt the engine renders with tiny-reasoner's chat template (ChatML), up to the
    assistant's turn; a test checks it equals the tokenizer's own rendering."""
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@dataclass(frozen=True)
class Example:
    """One training example: the loss falls on `response` only (the assistant's tokens)."""

    kind: str
    prompt: str
    response: str  # ends with <|im_end|> where the model should stop
    # A drill example is a run of parts instead: (text, whether the loss falls on it).
    parts: tuple[tuple[str, bool], ...] = ()

    def segments(self) -> tuple[tuple[str, bool], ...]:
        """The text in order, each piece marked with whether the loss falls on it."""
        return self.parts or ((self.prompt, False), (self.response, True))


@lru_cache(maxsize=1)
def held_out_questions() -> frozenset[str]:
    """The question texts training must never contain: the first 500 problems of seeds 1000-1099."""
    out: set[str] = set()
    for seed in HELD_OUT_SEEDS:
        out.update(p.question for p in load_problems("builtin:arith", seed=seed, limit=HELD_OUT_PER_SEED))
    return frozenset(out)


def training_problems(per_seed: int, seeds: range = TRAIN_SEEDS) -> list[ArithProblem]:
    """builtin:arith problems of `seeds` (all below 1000), minus every held-out question."""
    if seeds.stop > TRAIN_SEEDS.stop:
        raise ValueError(f"training seeds must be below {TRAIN_SEEDS.stop}")
    banned = held_out_questions()
    seen: set[str] = set()
    out: list[ArithProblem] = []
    for seed in seeds:
        for p in load_problems("builtin:arith", seed=seed, limit=per_seed):
            if p.question in banned or p.question in seen:
                continue
            seen.add(p.question)
            parsed = parse_problem(p.question)
            if parsed is None:  # a new builtin template this module does not know yet
                raise ValueError(f"builtin:arith question not understood: {p.question!r}")
            out.append(parsed)
    return out


# -- wrong steps ---------------------------------------------------------------------


def wrong_result(rng: random.Random, c: int) -> int:
    """A plausible wrong result: off by a little, or one digit changed (what a small model writes)."""
    while True:
        if rng.random() < 0.5:
            w = c + rng.choice((-10, -2, -1, 1, 2, 10))
        else:
            digits = list(str(c))
            i = rng.randrange(len(digits))
            digits[i] = str(rng.randrange(10))
            w = int("".join(digits))
        if w != c and w >= 0:
            return w


def corrupt(rng: random.Random, op: Op, problem: ArithProblem) -> tuple[Op, str]:
    """A wrong version of `op` and the critique that names what is wrong with it."""
    if op.op != "/" and rng.random() < 0.3:
        # A wrong operand, computed right: the step does not follow from what came before.
        pool = [v for v in problem.numbers.values() if v not in (op.a, op.b)] + [op.a + 1, max(op.b - 1, 2)]
        new = rng.choice(pool)
        first = rng.random() < 0.5
        a, b = (new, op.b) if first else (op.a, new)
        value = a + b if op.op == "+" else a - b if op.op == "-" else a * b
        if value >= 0 and (a, b) != (op.a, op.b):
            bad, good = (a, op.a) if first else (b, op.b)
            return Op(a, op.op, b, value), f"The step uses {bad} where it should use {good}: {op.text}."
    w = wrong_result(rng, op.c)
    return Op(op.a, op.op, op.b, w), f"The {OP_NAMES[op.op]} is wrong: {op.a} {op.op} {op.b} = {op.c}, not {w}."


# -- examples per meta action -----------------------------------------------------------


class ExampleMaker:
    """Renders examples of each meta action with the policy's prompts."""

    def __init__(self, prompts: Prompts | None = None) -> None:
        self.prompts = prompts or load_prompts()
        self.system = self.prompts.texts["system"]

    def _chat(self, name: str, **values: str) -> str:
        return chatml(self.system, self.prompts.render(name, hint="", **values))

    def solve(self, rng: random.Random, p: ArithProblem) -> Example:
        """The whole solution after the step prompt; the policy asks for it a step at a time
        (stop at the blank line) and rollouts ask for all of it: one example teaches both."""
        return Example("solve", self._chat("step", problem=p.question), SEP.join(p.solution()) + "<|im_end|>")

    def _prefix(self, rng: random.Random, p: ArithProblem, k: int, slip: bool) -> tuple[list[Op], list[str]]:
        """The first k steps; with `slip` one of them states a wrong result, and the steps
        after it carry that result on, as a model's own path does."""
        stated = [op.c for op in p.run()]
        if slip and k:
            i = rng.randrange(k)
            stated[i] = wrong_result(rng, stated[i])
            stated = stated[: i + 1]
        ops = p.run(stated)
        return ops, [op.text for op in ops[:k]]

    def judge(self, rng: random.Random, p: ArithProblem) -> Example:
        """Yes when the next step is right and the path so far is right; a path that went
        wrong earlier cannot end right, so its next step is rated No whatever it says."""
        steps_total = len(p.plan)
        k = rng.randint(0, steps_total)  # k == len(plan): the candidate is the answer step
        slip = k > 0 and rng.random() < 0.15
        ops, before = self._prefix(rng, p, k, slip)
        good = rng.random() < 0.5
        if k < steps_total:
            step = ops[k] if good else corrupt(rng, ops[k], p)[0]
            text = step.text
        else:
            last = ops[-1].c
            text = ANSWER_STEP.format(last if good else wrong_result(rng, last))
        verdict = "Yes" if good and not slip else "No"
        user = dict(problem=p.question, steps=SEP.join(before) or NO_STEPS, step=text)
        return Example("judge", chatml(self.system, self.prompts.render("judge", **user)), verdict + "<|im_end|>")

    def _criticized(self, rng: random.Random, p: ArithProblem) -> tuple[list[str], str, str, str]:
        """(steps before, a step, its critique, the step as it should read)."""
        ops = p.run()
        k = rng.randint(0, len(ops))
        before = [op.text for op in ops[:k]]
        if k < len(ops):
            right = ops[k].text
            if rng.random() < 0.5:
                return before, right, CORRECT_CRITIC, right
            bad, critique = corrupt(rng, ops[k], p)
            return before, bad.text, critique, right
        right = ANSWER_STEP.format(ops[-1].c)
        if rng.random() < 0.5:
            return before, right, CORRECT_CRITIC, right
        wrong = ANSWER_STEP.format(wrong_result(rng, ops[-1].c))
        return before, wrong, f"The final answer is wrong: the last step gives {ops[-1].c}.", right

    def critic(self, rng: random.Random, p: ArithProblem) -> Example:
        before, step, critique, _ = self._criticized(rng, p)
        prompt = self._chat("critic", problem=p.question, steps=SEP.join(before) or NO_STEPS, step=step)
        return Example("critic", prompt, critique + "<|im_end|>")

    def refine(self, rng: random.Random, p: ArithProblem) -> Example:
        before, step, critique, right = self._criticized(rng, p)
        prompt = self._chat(
            "refine", problem=p.question, steps=SEP.join(before) or NO_STEPS, step=step, critic=critique
        )
        return Example("refine", prompt, right + "<|im_end|>")

    def conclusion(self, rng: random.Random, p: ArithProblem) -> Example:
        """The answer the reasoning so far leads to: the operations left, then the box.
        Faithful to the steps given, wrong ones included: the grader, not the summary,
        decides what is correct."""
        k = rng.randint(0, len(p.plan))
        ops, before = self._prefix(rng, p, k, slip=k > 0 and rng.random() < 0.2)
        rest = ops[k:]
        final = ANSWER_STEP.format(ops[-1].c)
        if rest:
            text = "Then " + ", ".join(op.text for op in rest) + ". " + final
        else:
            text = f"The last step gives {ops[-1].c}. " + final
        prompt = self._chat("conclusion", problem=p.question, steps=SEP.join(before) or NO_STEPS)
        return Example("conclusion", prompt, text + "<|im_end|>")

    def drill(self, rng: random.Random, problems: list[ArithProblem], only: str | None = None) -> Example:
        """The operations of a few problems, each written as a step writes it and followed by
        the blank line that ends a step, with the loss on the result only (`a op b =` is
        given). `only` keeps the operations of those kinds ("*", "+-"). Some come from a path
        that slipped earlier, so the operands are those a model's own path carries on; the
        result drilled is always the true one."""
        parts: list[tuple[str, bool]] = []
        for p in problems:
            stated = None
            if rng.random() < 0.3:
                stated = [op.c for op in p.run()]
                i = rng.randrange(len(stated) - 1)
                stated[i] = wrong_result(rng, stated[i])
                stated = stated[: i + 1]
            for op in p.run(stated):
                value = op.value()  # the true result, also where the slipped step stated another
                if value is None or value < 0:
                    continue  # after a slip a division may not come out even: no fact to learn
                if only is not None and op.op not in only:
                    continue
                parts.append((f"{op.a} {op.op} {op.b} =", False))
                parts.append((f" {value}{SEP}", True))
        return Example("drill", "", "", tuple(parts))

    def example(self, rng: random.Random, p: ArithProblem, kind: str | None = None) -> Example:
        return getattr(self, kind or pick_kind(rng))(rng, p)


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """A mix by name (phase1, phase2, phase3: the shipped model's) or written out as
    'solve=0.4,times=0.3,...'; ValueError naming what is wrong. The shares are checked
    (known kinds, summing to 1) by TrainConfig."""
    if text.strip() in MIXES:
        return MIXES[text.strip()]
    mix = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        kind, sep, share = item.partition("=")
        try:
            value = float(share)
        except ValueError:
            value = None
        if not sep or value is None:
            raise ValueError(f"mix item {item!r}: write KIND=SHARE, e.g. solve=0.4, or a name: {', '.join(MIXES)}")
        mix.append((kind.strip(), value))
    return tuple(mix)


def pick_kind(rng: random.Random, mix: tuple[tuple[str, float], ...] = MIX) -> str:
    r = rng.random()
    for kind, share in mix:
        r -= share
        if r < 0:
            return kind
    return mix[0][0]


def example_stream(problems: list[ArithProblem], seed: int, maker: ExampleMaker | None = None) -> Iterator[Example]:
    """An endless, seeded stream of examples: a random problem, a random meta action."""
    maker = maker or ExampleMaker()
    rng = random.Random(seed)
    while True:
        yield maker.example(rng, problems[rng.randrange(len(problems))])


def batch_stream(
    problems: list[ArithProblem],
    seed: int,
    batch_size: int,
    maker: ExampleMaker | None = None,
    mix: tuple[tuple[str, float], ...] = MIX,
) -> Iterator[list[Example]]:
    """Endless seeded batches, each of one meta action: examples of one kind have similar
    lengths, so a batch carries little padding (training here is compute-bound)."""
    maker = maker or ExampleMaker()
    rng = random.Random(seed)

    def one(kind: str) -> Example:
        if kind == "drill":
            return maker.drill(rng, [problems[rng.randrange(len(problems))] for _ in range(DRILL_PROBLEMS)])
        if kind == "times":  # multiplications only: one per problem
            return maker.drill(rng, [problems[rng.randrange(len(problems))] for _ in range(3 * DRILL_PROBLEMS)], "*")
        if kind == "sums":  # additions and subtractions only: one or two per problem
            return maker.drill(rng, [problems[rng.randrange(len(problems))] for _ in range(2 * DRILL_PROBLEMS)], "+-")
        return maker.example(rng, problems[rng.randrange(len(problems))], kind)

    while True:
        kind = pick_kind(rng, mix)
        yield [one(kind) for _ in range(batch_size)]
