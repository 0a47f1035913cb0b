import asyncio
import math
import shutil
from dataclasses import replace

import pytest

from cotgen.engines.base import Completion, GenerationParams
from cotgen.errors import UsageError
from cotgen.policy import (
    DEFAULT_PROMPTS,
    RATING_TOKENS,
    EnginePolicy,
    EngineValuer,
    clean_text,
    confidence,
    load_prompts,
    reasoning,
    split_rollout,
)
from cotgen.search import Candidate, Proposal, SearchConfig
from cotgen.tree import Tree

GOLD = "7319"


class FakeEngine:
    name = "fake"
    model_id = "fake-model"

    def __init__(self, rating_tokens=False, texts=None):
        self.rating_tokens = rating_tokens
        self.texts = texts or ["First, add.", "Then multiply."]
        self.generate_calls = []
        self.score_calls = []

    async def generate(self, prompts, params):
        self.generate_calls.append(dict(prompts=prompts, params=params))
        return [
            [
                Completion(text=self.texts[i % len(self.texts)], tokens=2, finish_reason="stop",
                           logprobs=[-0.5, -1.5], top_logprobs=[[-0.5, -1.0], [-1.0, -1.5]], prompt_tokens=9)
                for i in range(params.n)
            ]
            for _ in prompts
        ]

    async def score(self, prompts, candidates):
        self.score_calls.append(dict(prompts=prompts, candidates=candidates))
        return [{c: (math.log(0.6) if c in ("Yes", "<positive_rating>") else math.log(0.2)) for c in candidates}
                for _ in prompts]

    def render_chat(self, messages, add_generation_prompt=True):
        return "".join(f"[{m['role']}]{m['content']}\n" for m in messages) + "[assistant]"

    def has_tokens(self, tokens):
        return self.rating_tokens and tokens == RATING_TOKENS

    async def close(self):
        pass


def sample_tree():
    t = Tree.new("Ann has 7000 apples and buys 319 more. How many?", GOLD)
    a = t.add(0, "step", "Ann starts with 7000.")  # 1
    c = t.add(a.id, "critic", "Say where 7000 comes from.")  # 2
    r = t.add(c.id, "refine", "The problem says Ann has 7000 apples.")  # 3
    return t, a, c, r


def test_default_prompts_load_and_keep_latex_braces():
    p = load_prompts()
    assert p.texts["system"] == "Please reason step by step, and put your final answer within \\boxed{}."
    assert "\\boxed{}" in p.render("conclusion", problem="q", steps="s", hint="")
    assert len(p.digest()) == 16


def test_missing_and_broken_templates_are_one_clear_usage_error(tmp_path):
    folder = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS, folder)
    (folder / "critic.txt").unlink()
    (folder / "judge.txt").write_text("Is it right?\n")
    with pytest.raises(UsageError) as e:
        load_prompts(folder)
    msg = str(e.value)
    assert "critic.txt: missing" in msg and "judge.txt: lacks the placeholder(s) {problem}, {steps}, {step}" in msg
    with pytest.raises(UsageError, match="no such folder"):
        load_prompts(tmp_path / "nope")


def test_reasoning_puts_the_refine_in_place_of_the_criticized_step():
    t, a, c, r = sample_tree()
    assert reasoning(t, a.id) == ["Ann starts with 7000."]
    assert reasoning(t, c.id) == []  # the critic withdraws the step it criticizes
    assert reasoning(t, r.id) == ["The problem says Ann has 7000 apples."]


@pytest.mark.parametrize("hint", [False, True])
def test_gold_reaches_policy_prompts_only_with_hint_answer(hint):
    t, a, c, r = sample_tree()
    pol = EnginePolicy(FakeEngine(), load_prompts(), SearchConfig(), hint_answer=hint)
    prompts = [pol.prompt(t, a, "step"), pol.prompt(t, a, "critic"), pol.prompt(t, c, "refine"),
               pol.prompt(t, r, "step")]
    assert all((GOLD in p) == hint for p in prompts)
    assert prompts[0].endswith("[assistant]Ann starts with 7000.\n\n")  # continues its own answer
    assert "Say where 7000 comes from." in prompts[2] and "Ann starts with 7000." in prompts[2]


def test_propose_is_one_n_sampled_request_with_step_stops():
    t, a, c, r = sample_tree()
    eng = FakeEngine(texts=["Add<end_of_thought> 319.\x1b", "Then \ufffdmultiply."])
    pol = EnginePolicy(eng, load_prompts(), SearchConfig(max_step_tokens=33))
    cands = asyncio.run(pol.propose(t, Proposal(parent=a.id, kind="critic", n=3, seed=11)))
    [call] = eng.generate_calls
    assert call["params"] == GenerationParams(n=3, max_tokens=33, temperature=0.8, top_p=0.95, stop=["\n\n"], seed=11)
    assert [c.text for c in cands] == ["Add 319.", "Then multiply.", "Add 319."]
    assert cands[0].logprob == pytest.approx(-1.0) and cands[0].tokens == 2 and cands[0].prompt_tokens == 9
    assert pol.generated_tokens == 6


def test_rollout_is_one_request_to_the_end_split_into_steps():
    t, a, c, r = sample_tree()
    text = "Add 319.\n\n7000 + 319 = 7319<|im_end|>\n\n\n\nSo \\boxed{7319}.\n\nAnd more after the answer."
    eng = FakeEngine(texts=[text])
    pol = EnginePolicy(eng, load_prompts(), SearchConfig(max_tokens=700))
    roll = asyncio.run(pol.rollout(t, r, seed=4))
    [call] = eng.generate_calls
    # It runs to the end of the solution (no stop string), as far as the context allows.
    assert call["params"] == GenerationParams(max_tokens=700, temperature=0.8, top_p=0.95, seed=4, fit_context=True)
    assert call["prompts"][0].endswith("[assistant]The problem says Ann has 7000 apples.\n\n")
    # Steps at blank lines, cleaned, empty ones dropped, cut after the first that answers.
    assert [s.text for s in roll.steps] == ["Add 319.", "7000 + 319 = 7319", "So \\boxed{7319}."]
    assert not roll.truncated and roll.tokens == 2 and roll.prompt_tokens == 9


def test_the_policy_builds_its_two_requests_once_and_varies_only_n_and_seed(monkeypatch):
    t, a, c, r = sample_tree()
    eng = FakeEngine()
    cfg = SearchConfig(temperature=0.6, top_p=0.9, max_tokens=300, max_step_tokens=40)
    pol = EnginePolicy(eng, load_prompts(), cfg)
    assert pol.rollout_params == GenerationParams(max_tokens=300, temperature=0.6, top_p=0.9, fit_context=True)
    assert pol.step_params == GenerationParams(max_tokens=40, temperature=0.6, top_p=0.9, stop=["\n\n"])

    def built_again(**settings):
        raise AssertionError(f"the policy built a request from its settings again: {settings}")

    monkeypatch.setattr("cotgen.policy.GenerationParams", built_again)

    async def calls():
        for seed in (1, 2):
            await pol.rollout(t, r, seed=seed)
            await pol.propose(t, Proposal(parent=a.id, kind="critic", n=seed + 1, seed=seed))

    asyncio.run(calls())
    assert [call["params"] for call in eng.generate_calls] == [
        replace(pol.rollout_params, seed=1), replace(pol.step_params, n=2, seed=1),
        replace(pol.rollout_params, seed=2), replace(pol.step_params, n=3, seed=2),
    ]


def test_split_rollout_marks_a_cut_completion_truncated_never_an_answer():
    cut = Completion(text="3 * 4 = 12\n\nSo the answer is \\boxed{1", tokens=40, finish_reason="length",
                     logprobs=[-0.1] * 40)
    roll = split_rollout(cut)
    assert roll.truncated and [s.text for s in roll.steps] == ["3 * 4 = 12", "So the answer is \\boxed{1"]
    assert sum(s.tokens for s in roll.steps) == pytest.approx(40, abs=2)  # shared out by characters
    answered = Completion(text="So \\boxed{12}.\n\nblah blah", tokens=40, finish_reason="length")
    assert not split_rollout(answered).truncated  # the answer came before the limit


def test_clean_text_and_confidence():
    assert clean_text("<|im_start|>x<start_of_rating>y<critic> z ") == "xy z"
    c = Completion(text="ab", tokens=2, finish_reason="stop", logprobs=[math.log(0.5), math.log(0.1)],
                   top_logprobs=[[math.log(0.5), math.log(0.3)], [math.log(0.6), math.log(0.3)]])
    # token 1 is in the top list: 0.5/0.8; token 2 is not: 0.1/(0.9+0.1)
    assert confidence(c) == pytest.approx((0.5 / 0.8 + 0.1 / 1.0) / 2)


def test_judge_reads_rating_tokens_when_the_model_has_them():
    t, a, c, r = sample_tree()
    eng = FakeEngine(rating_tokens=True)
    val = EngineValuer(eng, load_prompts(), SearchConfig())
    ev = asyncio.run(val.evaluate(t, r, "step", [Candidate("Add 319.", 2)], seed=0))
    assert ev.values == [pytest.approx(0.75)]  # 0.6 / (0.6 + 0.2)
    [call] = eng.score_calls
    assert call["candidates"] == RATING_TOKENS
    prompt = call["prompts"][0]
    assert prompt.startswith("<start_of_father_id>-1<end_of_father_id>")
    assert prompt.endswith("<start_of_thought>Add 319.<end_of_thought><start_of_rating>")
    assert "The problem says Ann has 7000 apples." in prompt and "Ann starts with 7000." not in prompt


def test_judge_asks_yes_or_no_otherwise():
    t, a, c, r = sample_tree()
    eng = FakeEngine(rating_tokens=False)
    val = EngineValuer(eng, load_prompts(), SearchConfig())
    ev = asyncio.run(val.evaluate(t, a, "step", [Candidate("Add 319.", 2), Candidate("x", 1)], seed=0))
    # Yes 0.6 + yes 0.2 against No 0.2 + no 0.2
    assert ev.values == [pytest.approx(0.8 / 1.2)] * 2
    assert "Answer Yes or No" in eng.score_calls[0]["prompts"][0]
    assert GOLD not in eng.score_calls[0]["prompts"][0]


def test_confidence_mode():
    t, a, c, r = sample_tree()
    val = EngineValuer(FakeEngine(), load_prompts(), SearchConfig(value_mode="confidence"))
    ev = asyncio.run(val.evaluate(t, a, "step", [Candidate("x", 1, confidence=0.3), Candidate("y", 1)], seed=0))
    assert ev.values == [0.3, 0.5]


def test_judging_a_refine_leaves_the_criticized_step_out():
    t, a, c, r = sample_tree()
    eng = FakeEngine(rating_tokens=False)
    val = EngineValuer(eng, load_prompts(), SearchConfig())
    asyncio.run(val.evaluate(t, c, "refine", [Candidate("Ann has 7000 apples.", 2)], seed=0))
    prompt = eng.score_calls[0]["prompts"][0]
    assert "Ann starts with 7000." not in prompt and "Ann has 7000 apples." in prompt


def test_two_way_is_neutral_when_no_candidate_was_seen():
    from cotgen.policy import _two_way

    assert _two_way({"Yes": -math.inf, "No": -math.inf}, ("Yes",), ("No",)) == 0.5
    assert _two_way({"Yes": math.log(0.3), "No": -math.inf}, ("Yes",), ("No",)) == 1.0
