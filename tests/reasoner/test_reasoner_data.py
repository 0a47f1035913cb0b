"""Training examples: held out honestly, rendered with the policy's own prompts."""

from __future__ import annotations

import random

import pytest

from cotgen.policy import load_prompts
from cotgen.problems import load_problems
from cotgen.reasoner.arith import parse_problem
from cotgen.reasoner.data import (
    CORRECT_CRITIC,
    ExampleMaker,
    batch_stream,
    chatml,
    held_out_questions,
    training_problems,
)


def test_training_never_sees_held_out_questions():
    banned = held_out_questions()
    assert len(banned) > 40_000  # 100 seeds x 500 problems, minus repeats across seeds
    first = next(iter(load_problems("builtin:arith", seed=1000, limit=1)))
    assert first.question in banned
    problems = training_problems(per_seed=40, seeds=range(0, 200))
    questions = {p.question for p in problems}
    assert not questions & banned
    # The builtin space is small enough that some seed-below-1000 questions do repeat held-out ones.
    raw = {p.question for s in range(0, 200) for p in load_problems("builtin:arith", seed=s, limit=40)}
    assert raw & banned, "the filter was never exercised"


def test_training_seeds_stay_below_1000():
    with pytest.raises(ValueError, match="below 1000"):
        training_problems(per_seed=1, seeds=range(990, 1001))


def test_examples_use_the_policy_prompts():
    prompts = load_prompts()
    maker = ExampleMaker(prompts)
    p = parse_problem(next(iter(load_problems("builtin:arith", seed=3, limit=1))).question)
    rng = random.Random(0)
    solve = maker.solve(rng, p)
    assert solve.prompt == chatml(prompts.texts["system"], prompts.render("step", problem=p.question, hint=""))
    assert solve.response == "\n\n".join(p.solution()) + "<|im_end|>"
    judges = [maker.judge(rng, p) for _ in range(40)]
    assert {e.response for e in judges} == {"Yes<|im_end|>", "No<|im_end|>"}
    assert all("Answer Yes or No." in e.prompt for e in judges)
    critics = [maker.critic(rng, p).response for _ in range(40)]
    assert CORRECT_CRITIC + "<|im_end|>" in critics
    assert any(" is wrong: " in c for c in critics)
    for _ in range(20):
        refine = maker.refine(rng, p)
        assert refine.response.removesuffix("<|im_end|>") in p.solution()  # a refine redoes the step right
        conclusion = maker.conclusion(rng, p)
        assert "\\boxed{" in conclusion.response and "\n\n" not in conclusion.response


def test_batches_are_seeded_and_of_one_kind():
    problems = training_problems(per_seed=5, seeds=range(0, 20))
    a, b = batch_stream(problems, 5, 8), batch_stream(problems, 5, 8)
    for _ in range(10):
        x, y = next(a), next(b)
        assert x == y
        assert len({e.kind for e in x}) == 1


def test_drill_trains_true_results_of_the_problems_operations_only():
    problems = training_problems(per_seed=5, seeds=range(0, 20))
    rng = random.Random(3)
    maker = ExampleMaker()
    sample = [problems[i] for i in range(8)]
    drill = maker.drill(rng, sample)
    assert drill.kind == "drill" and drill.segments() == drill.parts
    given = [t for t, trained in drill.parts if not trained]
    results = [t for t, trained in drill.parts if trained]
    assert len(given) == len(results) >= 8
    for question, answer in zip(given, results, strict=True):
        a, op, b, eq = question.split()  # "a op b =": the loss never falls on the operands
        assert eq == "=" and answer.endswith("\n\n")
        assert int(answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b), "/": int(a) // int(b)}[op]
    operands = {(p.run()[0].a, p.run()[0].b) for p in sample}
    firsts = {tuple(int(x) for x in q.split()[::2][:2]) for q in given}
    assert operands <= firsts  # the first step of each problem is drilled (it never slips)
    times = maker.drill(rng, sample, "*")
    assert all(" * " in t for t, trained in times.parts if not trained)


def test_an_ordinary_example_is_its_prompt_then_its_response():
    problems = training_problems(per_seed=1, seeds=range(0, 2))
    e = ExampleMaker().solve(random.Random(0), problems[0])
    assert e.segments() == ((e.prompt, False), (e.response, True))


def test_mix_is_read_and_checked():
    from cotgen.reasoner.data import parse_mix
    from cotgen.reasoner.train import TrainConfig

    mix = parse_mix("solve=0.5, times=0.5")
    assert mix == (("solve", 0.5), ("times", 0.5))
    assert TrainConfig(mix=mix).mix == mix
    with pytest.raises(ValueError, match="KIND=SHARE"):
        parse_mix("solve:0.5")
    with pytest.raises(ValueError, match="summing to 1"):
        TrainConfig(mix=parse_mix("solve=0.5,judge=0.2"))
    with pytest.raises(ValueError, match="summing to 1"):
        TrainConfig(mix=parse_mix("solve=0.5,poetry=0.5"))
