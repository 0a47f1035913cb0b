"""The search-quality bench's accounting on a scripted engine: both methods are charged
exactly the tokens the engine generated (plus one per judged prompt), budgets cut alike."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root holds bench/

from bench.search_quality import (  # noqa: E402
    JUDGE_TOKENS,
    MeteredEngine,
    SearchRecord,
    auc,
    bon_at,
    mcts_at,
    processbench_f1,
    search_one,
)
from cotgen.engines.base import Completion  # noqa: E402
from cotgen.policy import load_prompts  # noqa: E402
from cotgen.problems import Problem  # noqa: E402
from cotgen.search.config import SearchConfig  # noqa: E402
from cotgen.tree import Tree  # noqa: E402

Q = "Start with 9. Multiply it by 8, add 10, then subtract 2. What number do you get?"
SCRIPT = ["9 * 8 = 72", "72 + 10 = 82", "82 - 2 = 80", "The answer is \\boxed{80}."]


class ScriptedEngine:
    """Writes the script's next step (by how many steps the prompt already holds), each
    token-counted by its words; the judge always leans Yes. Keeps a ledger of what it produced."""

    name, model_id = "scripted", "scripted"

    def __init__(self) -> None:
        self.generated = 0
        self.scored = 0

    async def generate(self, prompts, n=1, max_tokens=256, temperature=0.7, top_p=1.0, stop=None, seed=None):
        out = []
        for p in prompts:
            done = sum(s in p.split("<|im_start|>assistant\n")[-1] for s in SCRIPT)
            text = SCRIPT[min(done, len(SCRIPT) - 1)] if stop else "\n\n".join(SCRIPT)
            row = [Completion(text=text, tokens=len(text.split()) + j, finish_reason="stop",
                              logprobs=[-0.5] * (len(text.split()) + j)) for j in range(n)]
            self.generated += sum(c.tokens for c in row)
            out.append(row)
        return out

    async def score(self, prompts, candidates):
        self.scored += len(prompts)
        return [{c: (math.log(0.7) if c.lower() == "yes" else math.log(0.3)) for c in candidates} for _ in prompts]

    def render_chat(self, messages, add_generation_prompt=True):
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"

    def has_tokens(self, tokens):
        return False


@pytest.mark.parametrize("value", ["judge", "confidence", "rollout"])
def test_search_is_charged_what_the_engine_generated(value):
    engine = ScriptedEngine()
    cfg = SearchConfig(simulations=1000, parallel=1, enough_correct=0, value=value, rollouts=2, critic_rate=0.0,
                       conclude_rate=0.0)
    problem = Problem("p", Q, "80", "test")
    budget = 400
    record = asyncio.run(search_one(engine, load_prompts(), problem, cfg, budget=budget, model="scripted"))
    assert record.tokens == engine.generated + JUDGE_TOKENS * engine.scored
    assert record.tokens >= budget  # it ran until the budget was spent
    assert value != "judge" or engine.scored > 0
    passed, pick, vote, used = mcts_at(record, budget)
    assert used == record.tokens
    # Rollouts all agree here, so that search spreads wide and has no leaf yet.
    assert passed == (value != "rollout")
    # A smaller budget keeps a prefix of the expansions and charges what they spent.
    _, _, _, used_small = mcts_at(record, 10)
    assert used_small < used


def test_best_of_n_is_charged_what_the_engine_generated():
    from cotgen.reasoner.evaluate import sample_solutions

    engine = ScriptedEngine()
    meter = MeteredEngine(engine)
    [row] = asyncio.run(sample_solutions(meter, [Problem("p", Q, "80", "t")], n=5, temperature=1.0, prompts=load_prompts()))
    samples = [(s.tokens, s.answer, s.correct) for s in row]
    assert sum(s[0] for s in samples) == engine.generated == meter.tokens
    passed, majority, used = bon_at(samples, budget=10**9)
    assert passed and majority and used == engine.generated


def test_budgets_admit_the_work_started_before_they_ran_out():
    samples = [(10, "5", True), (10, "6", False), (10, "6", False)]
    assert bon_at(samples, 15) == (True, True, 20)  # a 1-1 tie goes to the answer seen first
    assert bon_at(samples, 25) == (True, False, 30)  # 6 wins 2-1
    assert bon_at(samples, 5) == (True, True, 10)
    tree = Tree.new(Q, "80")
    a = tree.add(0, "step", "The answer is \\boxed{79}.", terminal=True, value=0.9)
    b = tree.add(0, "step", "The answer is \\boxed{80}.", terminal=True, value=0.4)
    record = SearchRecord(tree, {0: 0, a.id: 0, b.id: 20}, tokens=35, verdicts={a.id: False, b.id: True})
    assert mcts_at(record, 20) == (False, False, False, 20)
    # The correct leaf is found, not picked; the vote is 1-1 and goes to the leaf started first.
    assert mcts_at(record, 21) == (True, False, False, 35)
    c = tree.add(0, "conclusion", "So 72 + 8 = 80. The answer is \\boxed{80}.", terminal=True, value=0.1)
    record.started_at[c.id], record.verdicts[c.id] = 25, True
    assert mcts_at(record, 30) == (True, False, True, 35)  # 80 wins the vote 2-1; the pick stays 79


def test_auc_and_processbench_f1():
    assert auc([(0.9, True), (0.1, False)]) == 1.0
    assert auc([(0.1, True), (0.9, False)]) == 0.0
    assert auc([(0.5, True), (0.5, False)]) == 0.5
    assert auc([(0.5, True)]) is None
    pairs = [(1, 1), (2, 0), (None, None), (None, 3)]
    r = processbench_f1(pairs)
    assert r["acc_error_paths"] == 0.5 and r["acc_correct_paths"] == 0.5 and r["f1"] == 0.5
