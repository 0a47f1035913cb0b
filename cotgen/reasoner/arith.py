"""builtin:arith problems as operations: their worked solutions in the policy's step format,
and the exact truth of a step ("9 * 8 = 72": right arithmetic, and operands the path has)."""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSWER_STEP = "The answer is \\boxed{{{}}}."
OP_NAMES = {"+": "addition", "-": "subtraction", "*": "multiplication", "/": "division"}


@dataclass(frozen=True)
class Op:
    """One arithmetic step `a op b = c`; `c` is what the step states, right or not."""

    a: int
    op: str
    b: int
    c: int

    @property
    def text(self) -> str:
        return f"{self.a} {self.op} {self.b} = {self.c}"

    def value(self) -> int | None:
        """What `a op b` really is; None for a division that does not come out even."""
        return apply(self.a, self.op, self.b)


def apply(a: int, op: str, b: int) -> int | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a // b if b and a % b == 0 else None
    raise ValueError(f"unknown operation {op!r}")


# Each builtin:arith template (cotgen/problems.py::_arith) and its plan: a list of
# (operand, op, operand) where an operand is a named number of the question or "#k",
# the result of step k.
_N = r"(\d+)"
_TEMPLATES: list[tuple[re.Pattern[str], tuple[str, ...], list[tuple[str, str, str]]]] = [
    (
        re.compile(rf"^\w+ has {_N} \w+\. \w+ buys {_N} boxes with {_N} \w+ in each box, then gives {_N} \w+ to \w+\."),
        ("start", "boxes", "per", "given"),
        [("boxes", "*", "per"), ("start", "+", "#0"), ("#1", "-", "given")],
    ),
    (
        re.compile(rf"^\w+ collects {_N} \w+ every day for {_N} days\. \w+ collects {_N} more"),
        ("per_day", "days", "extra"),
        [("per_day", "*", "days"), ("#0", "+", "extra"), ("#0", "+", "#1")],
    ),
    (
        re.compile(rf"^\w+ has {_N} bags of \w+ with {_N} in each bag\. \w+ keeps {_N} and shares the rest equally among {_N} friends"),
        ("groups", "each", "kept", "share"),
        [("groups", "*", "each"), ("#0", "-", "kept"), ("#1", "/", "share")],
    ),
    (
        re.compile(rf"^Start with {_N}\. Multiply it by {_N}, add {_N}, then subtract {_N}\."),
        ("a", "b", "c", "d"),
        [("a", "*", "b"), ("#0", "+", "c"), ("#1", "-", "d")],
    ),
]


@dataclass(frozen=True)
class ArithProblem:
    """A builtin:arith question read back into its numbers and its plan of operations."""

    question: str
    numbers: dict[str, int]
    plan: list[tuple[str, str, str]]

    def run(self, stated: list[int] | None = None) -> list[Op]:
        """The plan's operations. `stated[k]`, when given, is the result step k wrote (maybe
        wrong): later steps use it, as a model continuing its own reasoning does."""
        ops: list[Op] = []
        for k, (x, op, y) in enumerate(self.plan):
            a, b = self._operand(x, ops), self._operand(y, ops)
            value = apply(a, op, b)
            c = stated[k] if stated is not None and k < len(stated) else value
            ops.append(Op(a, op, b, c if c is not None else a // max(b, 1)))
        return ops

    def _operand(self, name: str, ops: list[Op]) -> int:
        return ops[int(name[1:])].c if name.startswith("#") else self.numbers[name]

    @property
    def answer(self) -> int:
        return self.run()[-1].c

    def solution(self) -> list[str]:
        """The worked solution in the policy's step format: one operation per step, then the answer."""
        ops = self.run()
        return [op.text for op in ops] + [ANSWER_STEP.format(ops[-1].c)]


def parse_problem(question: str) -> ArithProblem | None:
    """The builtin:arith problem `question` states, or None when it is not one of them."""
    for pattern, names, plan in _TEMPLATES:
        m = pattern.match(question)
        if m:
            return ArithProblem(question, {n: int(v) for n, v in zip(names, m.groups(), strict=True)}, plan)
    return None


# -- step truth ------------------------------------------------------------------------

_STEP = re.compile(r"^\s*(-?\d+)\s*([-+*/x×÷])\s*(-?\d+)\s*=\s*(-?\d+)\s*\.?\s*$")
_BOXED = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")
_SYMBOLS = {"x": "*", "×": "*", "÷": "/"}


def parse_step(text: str) -> Op | None:
    """`text` as one operation `a op b = c`, or None when it is not one."""
    m = _STEP.match(text)
    if not m:
        return None
    a, op, b, c = m.groups()
    return Op(int(a), _SYMBOLS.get(op, op), int(b), int(c))


@dataclass(frozen=True)
class StepTruth:
    """The exact verdict on one step of a path."""

    correct: bool
    reason: str  # "ok", or what is wrong: "arithmetic", "operand", "unparsed", "answer", "early answer"


_OP_IN_TEXT = re.compile(r"(-?\d+)\s*([-+*/x×÷])\s*(-?\d+)\s*=\s*(-?\d+)")


def label_path(question: str, steps: list[str]) -> list[StepTruth]:
    """The exact truth of each step of a path, ProcessBench-style: a step is correct when its
    arithmetic is right and it follows from its parent: it is the next operation of the
    problem's plan, applied to the numbers of the question and the results of the steps
    before (as they were written: an earlier error is that step's, not this one's). A step
    that states a final answer is correct when the plan is done and the answer is the last
    result. A conclusion may do several operations and then answer: each must hold."""
    problem = parse_problem(question)
    if problem is None:
        raise ValueError(f"not a builtin:arith question: {question[:60]!r}")
    verdicts: list[StepTruth] = []
    stated: list[int] = []
    for text in steps:
        verdicts.append(_label(problem, stated, text))
    return verdicts


def _label(problem: ArithProblem, stated: list[int], text: str) -> StepTruth:
    """The verdict on one step; appends the results it states to `stated`."""
    ops = [Op(int(a), _SYMBOLS.get(op, op), int(b), int(c)) for a, op, b, c in _OP_IN_TEXT.findall(text)]
    boxed = _BOXED.search(text)
    if not ops and boxed is None:
        return StepTruth(False, "unparsed")
    verdict = StepTruth(True, "ok")
    for op in ops:
        k = len(stated)
        if k >= len(problem.plan):
            return StepTruth(False, "unparsed") if verdict.correct else verdict
        expected = problem.run(stated)[k]
        stated.append(op.c)
        if not verdict.correct:
            continue  # the first fault of the step is its reason; later ops still set results
        if op.op != expected.op or (op.a, op.b) != (expected.a, expected.b) and not (
            op.op in "+*" and (op.b, op.a) == (expected.a, expected.b)
        ):
            verdict = StepTruth(False, "operand")
        elif op.value() != op.c:
            verdict = StepTruth(False, "arithmetic")
    if boxed is not None and verdict.correct:
        if len(stated) < len(problem.plan):
            return StepTruth(False, "early answer")
        if int(boxed.group(1)) != stated[-1]:
            return StepTruth(False, "answer")
    return verdict
