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
    auc,
    bon_at,
    bon_default,
    kept_tree,
    processbench_f1,
    search_one,
    visible_figures,
    vote,
)
from cotgen.engines.base import Completion  # noqa: E402
from cotgen.policy import load_prompts  # noqa: E402
from cotgen.problems import Problem  # noqa: E402
from cotgen.reasoner.evaluate import path_errors  # noqa: E402
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
        self.prompt_tokens = 0

    async def generate(self, prompts, params):
        out = []
        for p in prompts:
            done = sum(s in p.split("<|im_start|>assistant\n")[-1] for s in SCRIPT)
            rest = list(SCRIPT[done:]) or [SCRIPT[-1]]
            if params.seed is not None and params.seed % 2:  # half the rollouts get the last sum wrong
                rest[-1] = rest[-1].replace("80", "81")
            text = rest[0] if params.stop else "\n\n".join(rest)
            row = [Completion(text=text, tokens=len(text.split()) + j, finish_reason="stop",
                              logprobs=[-0.5] * (len(text.split()) + j),
                              top_logprobs=[[-0.5, -1.5]] * (len(text.split()) + j), prompt_tokens=len(p.split()))
                   for j in range(params.n)]
            self.prompt_tokens += sum(c.prompt_tokens for c in row)
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


@pytest.mark.parametrize("visible", [True, False])
def test_search_is_charged_what_the_engine_generated_and_read_at_each_budget(visible):
    engine = ScriptedEngine()
    cfg = SearchConfig(simulations=1000, parallel=1, enough_correct=0)
    problem = Problem("p", Q, "80", "test")
    budget = 200
    record = asyncio.run(search_one(engine, load_prompts(), problem, cfg, budget=budget, model="scripted",
                                    visible=visible))
    assert record.tokens == engine.generated + JUDGE_TOKENS * engine.scored
    assert record.prompt_tokens >= engine.prompt_tokens > 0  # judged prompts are metered too
    assert record.tokens >= budget  # it ran until the budget was spent
    assert (engine.scored > 0) == (not visible)  # the value head runs only without the gold
    assert record.log[0].tokens_before == 0 and record.log[0].why == "root"
    # The whole tree, read at the largest budget, is what the search made.
    tree, sims, used, _ = kept_tree(record, budget, cfg.negative_after)
    assert len(sims) == len(record.log) and used == record.tokens
    assert [n.visits for n in tree.nodes] == [n.visits for n in record.tree.nodes]
    # A smaller budget keeps a prefix of the simulations, their nodes and visits.
    small, sims_small, used_small, _ = kept_tree(record, 30, cfg.negative_after)
    assert 0 < len(sims_small) < len(sims) and used_small < used
    assert small.root.visits == len(sims_small) and len(small.nodes) <= len(tree.nodes)
    assert sum(n.visits for n in small.leaves() if n.parent != -1) == len(sims_small)
    fig = visible_figures([record], 10.0, cfg, simulations=2)
    assert fig["default"]["tokens"] == record.log[2].tokens_before
    assert 0 <= fig[16]["rating_f1"] <= 1 and fig[16]["solved"] == 1.0


def test_best_of_n_is_charged_what_the_engine_generated():
    from cotgen.reasoner.evaluate import sample_solutions

    engine = ScriptedEngine()
    meter = MeteredEngine(engine)
    [row] = asyncio.run(sample_solutions(meter, [Problem("p", Q, "80", "t")], n=5, temperature=1.0, prompts=load_prompts()))
    samples = [(s.tokens, s.answer, s.correct) for s in row]
    assert sum(s[0] for s in samples) == engine.generated == meter.tokens
    assert meter.prompt_tokens == engine.prompt_tokens > 0
    passed, majority, used, taken = bon_at(samples, budget=10**9)
    assert passed and used == engine.generated and taken == 5


def test_budgets_admit_the_work_started_before_they_ran_out_and_stop_at_enough_correct():
    samples = [(10, "5", True), (10, "6", False), (10, "6", False), (10, "5", True)]
    assert bon_at(samples, 15) == (True, True, 20, 2)  # a 1-1 tie goes to the answer seen first
    assert bon_at(samples, 25) == (True, False, 30, 3)  # 6 wins 2-1
    assert bon_at(samples, 5) == (True, True, 10, 1)
    assert bon_at(samples, 100, enough=1) == (True, True, 10, 1)  # the data run's stop
    assert bon_at(samples, 100, enough=2)[3] == 4
    rows = [samples, [(10, "6", False)] * 4]
    half = bon_default(rows, 10.0, enough=2)  # N = 1: one of two solved, 10 tokens each
    assert half["solved"] == pytest.approx(0.5) and half["n"] == pytest.approx(1.0)


def test_vote_counts_the_rollouts_a_merged_answer_stands_for():
    tree = Tree.new(Q, "80")
    tree.add(0, "step", "The answer is \\boxed{79}.", terminal=True, correct=False, visits=1)
    tree.add(0, "step", "So 72 + 8 = 80, the answer is \\boxed{80}.", terminal=True, correct=True, visits=1)
    assert vote(tree) is False  # 1-1: the earliest
    tree.nodes[2].visits = 2  # two rollouts ended at the right answer
    assert vote(tree) is True


def test_auc_and_processbench_f1():
    assert auc([(0.9, True), (0.1, False)]) == 1.0
    assert auc([(0.1, True), (0.9, False)]) == 0.0
    assert auc([(0.5, True), (0.5, False)]) == 0.5
    assert auc([(0.5, True)]) is None
    pairs = [(1, 1), (2, 0), (None, None), (None, 3)]
    r = processbench_f1(pairs)
    assert r["acc_error_paths"] == 0.5 and r["acc_correct_paths"] == 0.5 and r["f1"] == 0.5


class FakePRM:
    """A PRM that rates the steps of every path `scores` (the last one repeated); its
    layout counts one token per word."""

    def __init__(self, *scores: float) -> None:
        from cotgen.reward_model import PRMLayout

        class Words:
            bos_token_id = None

            def encode(self, text, add_special_tokens=False):
                return text.split()

        self.scores, self.calls = list(scores), 0
        self.tokenizer, self.layout = Words(), PRMLayout(separator="\n\n")

    async def score(self, problem, paths):
        self.calls += len(paths)
        return [[self.scores[min(i, len(self.scores) - 1)] for i in range(len(steps))] for steps in paths]


def test_the_prm_values_hidden_answers_and_is_metered_as_the_judge():
    engine = ScriptedEngine()
    prm = FakePRM(0.9)
    cfg = SearchConfig(simulations=1000, parallel=1, enough_correct=0, value_mode="prm", value_model="fake")
    record = asyncio.run(search_one(engine, load_prompts(), Problem("p", Q, "80", "test"), cfg, budget=100,
                                    model="scripted", visible=False, prm=prm))
    valued = [n for n in record.tree.nodes if n.q_estimate is not None]
    assert valued and all(n.q_estimate == 0.9 for n in valued)
    assert engine.scored == 0 and prm.calls == len(valued)  # the policy judges nothing
    assert record.tokens == engine.generated + JUDGE_TOKENS * prm.calls


def test_prm_tiebreak_rates_only_the_steps_the_tree_lacks_evidence_for():
    """One failed rollout, negative_after 2: only its graded answer is rated (negative); the
    PRM rates the three steps before it. The exact first error is the second step."""
    from bench.search_quality import SearchRecord, Simulation, prm_tiebreak_f1

    tree = Tree.new(Q, "80")
    a = tree.add(0, "step", "9 * 8 = 72")
    b = tree.add(a.id, "step", "72 + 10 = 83")
    c = tree.add(b.id, "step", "83 - 2 = 81")
    d = tree.add(c.id, "step", "The answer is \\boxed{81}.", terminal=True, correct=False)
    record = SearchRecord(tree, [Simulation(0, 0, d.id, 1, "root")], tokens=20, prompt_tokens=0)
    cfg = SearchConfig(negative_after=2)
    alone = processbench_f1(path_errors(kept_tree(record, float("inf"), 2)[0]))
    assert alone["acc_error_paths"] == 0.0  # the search flags only the answer
    right = asyncio.run(prm_tiebreak_f1([record], FakePRM(0.9, 0.2), cfg, 1))
    assert right["filled_ratings"] == 3 and right["acc_error_paths"] == 1.0
    trusting = asyncio.run(prm_tiebreak_f1([record], FakePRM(0.9), cfg, 1))
    assert trusting["acc_error_paths"] == 0.0  # all three positive: the answer stays the first negative


def test_a_best_of_n_search_starts_every_rollout_at_the_root_and_is_read_as_the_search():
    from bench.search_quality import ROOT_ONLY, hidden_figures

    engine = ScriptedEngine()
    cfg = SearchConfig(simulations=1000, parallel=1, enough_correct=0, samples=ROOT_ONLY)
    record = asyncio.run(search_one(engine, load_prompts(), Problem("p", Q, "80", "test"), cfg, budget=200,
                                    model="scripted", visible=False))
    assert {s.why for s in record.log} == {"root"} and len(record.log) > 2
    assert record.confidence and all(0 <= c <= 1 for c in record.confidence.values())
    fig = hidden_figures([record], 10.0, cfg)
    # Half the scripted rollouts end at 81, valued the same: pass is certain, and the votes
    # (plain and weighted, ties to the first answer) agree with each other.
    assert fig[16]["pass"] == 1.0 and fig[16]["vote"] == fig[16]["wvote"]
    assert set(fig[16]) >= {"pick", "wvote_confidence", "descent", "tokens"}


def test_descent_follows_the_highest_value_child_to_its_answer():
    from bench.search_quality import descent, weighted_vote

    tree = Tree.new(Q, "80")
    wrong = tree.add(0, "step", "9 * 8 = 71", value=0.9, visits=1)
    tree.add(wrong.id, "step", "\\boxed{79}", terminal=True, correct=False, value=0.9, q_estimate=0.9)
    right = tree.add(0, "step", "9 * 8 = 72", value=0.4, visits=3)
    tree.add(right.id, "step", "\\boxed{80}", terminal=True, correct=True, value=0.4, q_estimate=0.4, visits=3)
    assert descent(tree) is False  # 0.9 beats 0.4 on the way down
    assert weighted_vote(tree) is True  # 3 x 0.4 = 1.2 beats 0.9
