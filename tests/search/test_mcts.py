import asyncio
import random

import pytest
from search_fakes import FakePolicy, FakeValuer, fake_grader

from cotgen.search import SearchConfig, TreeSearch, run_search
from cotgen.search.mcts import normalized
from cotgen.search.protocols import Candidate, Rollout
from cotgen.tree import Tree


def search(cfg, policy=None, valuer=None, answer="42", seed=None):
    tree = Tree.new("What is 6 * 7?", answer)
    policy = policy or FakePolicy()
    valuer = valuer or FakeValuer()
    ts = TreeSearch(tree, policy, valuer, fake_grader, cfg, random.Random(cfg.seed if seed is None else seed))
    policy.search = ts
    asyncio.run(ts.run())
    return ts, tree, policy


def assert_visits_add_up(tree):
    """Every simulation adds a visit from the root to its chain's end, so a node holds at
    least its children's visits, and exactly them unless a rollout ended at it."""
    kids = tree.children()
    for n in tree.nodes:
        if kids[n.id]:
            assert n.visits >= sum(c.visits for c in kids[n.id]), n.id


def assert_no_duplicate_siblings(tree):
    kids = tree.children()
    for n in tree.nodes:
        keys = [(c.kind, normalized(c.text), c.truncated) for c in kids[n.id]]
        assert len(keys) == len(set(keys)), (n.id, keys)


@pytest.mark.parametrize("parallel", [1, 4])
def test_visits_add_up_and_virtual_loss_is_released(parallel):
    cfg = SearchConfig(simulations=40, enough_correct=0, parallel=parallel, critics=3)
    ts, tree, policy = search(cfg, FakePolicy(right_rate=0.3))
    tree.check()
    assert_visits_add_up(tree)
    assert tree.root.visits == 40 == tree.stats.simulations
    assert sum(n.visits for n in tree.leaves()) == 40  # every rollout ended at a leaf
    assert ts.pending == {} and all(v == 0 for v in ts.flying.values())
    if parallel > 1:
        assert max(p.get(0, 0.0) for p in policy.pending_seen) >= 2.0
    else:
        assert all(p.get(0) == 1.0 for p in policy.pending_seen)


def test_identical_steps_merge_into_one_node_with_a_count():
    # One choice per depth: every rollout writes the same steps, so the tree is one chain
    # (plus one leaf per distinct answer) whatever the number of simulations.
    cfg = SearchConfig(simulations=12, enough_correct=0, samples=12)
    _, tree, _ = search(cfg, FakePolicy(choices=1, length=3, right_rate=0.5))
    assert_no_duplicate_siblings(tree)
    steps = [n for n in tree.nodes if n.kind == "step" and not n.terminal]
    assert [n.text for n in steps] == ["step 0.0", "step 1.0"]
    assert [n.visits for n in steps] == [12, 12]
    answers = [n for n in tree.nodes if n.terminal]
    assert len(answers) == 2 and sum(n.visits for n in answers) == 12


def test_whitespace_does_not_make_a_new_step():
    class Spacey(FakePolicy):
        async def rollout(self, tree, start, seed):
            text = "a  step\twith space" if len(self.starts) % 2 else "a step with space"
            self.starts.append(start.id)
            return Rollout(steps=[Candidate(text, 3), Candidate("\\boxed{42}", 2)], tokens=5)

    cfg = SearchConfig(simulations=6, enough_correct=0, samples=6, parallel=1)
    _, tree, _ = search(cfg, Spacey())
    assert len(tree.children()[0]) == 1 and tree.nodes[1].visits == 6


def test_every_rollout_ends_at_an_answer_or_a_truncation():
    cfg = SearchConfig(simulations=30, enough_correct=0)
    _, tree, _ = search(cfg, FakePolicy(truncate_rate=0.4, length=4))
    leaves = tree.leaves()
    cut = [n for n in leaves if n.truncated]
    assert cut and all(not n.terminal and n.correct is None for n in cut)  # cut short: never an answer
    assert all(n.terminal or n.truncated for n in leaves)
    assert not any(n.truncated for n in tree.nodes if tree.children()[n.id])  # nothing continues a cut step
    tree.check()


def test_first_simulations_start_at_the_root_then_the_search_branches():
    cfg = SearchConfig(simulations=20, samples=5, enough_correct=0, parallel=1, probe=False)
    ts, tree, policy = search(cfg, FakePolicy(right_rate=0.3, choices=3, length=4))
    assert policy.starts[:5] == [0] * 5
    assert any(s != 0 for s in policy.starts[5:])  # later ones start inside the tree
    assert ts.plans["root"] >= 5 and ts.plans.get("puct", 0) > 0


def test_widening_starts_more_root_samples_as_the_simulations_grow():
    cfg = SearchConfig(simulations=36, samples=2, widen=1.0, enough_correct=0, parallel=1, probe=False)
    ts, tree, policy = search(cfg, FakePolicy(right_rate=0.3, choices=3, length=4), answer=None)
    assert policy.starts[:2] == [0, 0]
    # The root starts a sample while it has fewer than sqrt(simulations started): 6 of 36.
    assert policy.starts.count(0) == 6
    assert [i for i, s in enumerate(policy.starts, start=1) if s == 0] == [1, 2, 5, 10, 17, 26]
    off = search(SearchConfig(**{**cfg.to_dict(), "widen": 0.0}), FakePolicy(right_rate=0.3, choices=3, length=4),
                 answer=None)
    assert off[2].starts.count(0) < 6
    # With the gold the tree's values are verdicts: no widening.
    graded = search(cfg, FakePolicy(right_rate=0.3, choices=3, length=4))
    assert graded[2].starts.count(0) == off[2].starts.count(0)


def test_early_stop_at_enough_correct_rollouts():
    cfg = SearchConfig(simulations=200, enough_correct=3, parallel=1)
    ts, tree, _ = search(cfg, FakePolicy(right_rate=0.5))
    assert ts.correct == 3 and tree.stats.simulations < 200
    assert sum(n.visits for n in tree.nodes if n.terminal and n.correct) == 3


def test_depth_limit_joins_the_steps_beyond_it():
    cfg = SearchConfig(simulations=3, enough_correct=0, max_depth=2, samples=3)
    _, tree, _ = search(cfg, FakePolicy(length=5, choices=1))
    depth = {0: 0}
    for n in tree.preorder():
        if n.parent != -1:
            depth[n.id] = depth[n.parent] + 1
    assert max(depth.values()) == 2
    last = [n for n in tree.nodes if n.terminal][0]
    assert last.text.startswith("step 1.0\n\nstep 2.0") and "\\boxed" in last.text


def test_critic_goes_on_the_first_negative_step_and_its_refine_rolls_out():
    # Two root rollouts share "good" then part: "bad" fails, "fine" answers right. The first
    # error of the failed path is "bad" (a correct answer passes through "good").
    script = [["good", "bad", "\\boxed{1}"], ["good", "fine", "\\boxed{42}"]]

    class Scripted(FakePolicy):
        async def rollout(self, tree, start, seed):
            self.starts.append(start.id)
            steps = script[len(self.starts) - 1] if len(self.starts) <= 2 else ["\\boxed{42}"]
            return Rollout(steps=[Candidate(s, 2) for s in steps], tokens=6)

    cfg = SearchConfig(simulations=3, samples=2, enough_correct=0, critics=1, parallel=1)
    ts, tree, policy = search(cfg, Scripted())
    by_text = {n.text: n for n in tree.nodes}
    critic = next(n for n in tree.nodes if n.kind == "critic")
    assert critic.parent == by_text["bad"].id
    refine = next(n for n in tree.nodes if n.kind == "refine")
    assert refine.parent == critic.id
    assert policy.starts[-1] == refine.id  # the refine rolled out to an answer
    assert [p.kind for p in policy.proposals] == ["critic", "refine"]
    assert tree.children()[refine.id][0].correct is True
    tree.check()


def test_without_refine_critics_are_leaves():
    cfg = SearchConfig(simulations=30, enough_correct=0, critics=2, refine=False)
    _, tree, policy = search(cfg, FakePolicy(right_rate=0.4, choices=2, length=4))
    critics = [n for n in tree.nodes if n.kind == "critic"]
    assert critics and not any(n.kind == "refine" for n in tree.nodes)
    kids = tree.children()
    assert all(not kids[c.id] for c in critics)


def test_probes_roll_out_inside_a_failed_path():
    # Rollouts from the root all fail; with enough steps the consensus leaves unknown steps
    # between, and probes start rollouts there.
    cfg = SearchConfig(simulations=30, enough_correct=0, samples=4, parallel=1, critics=0)
    ts, tree, policy = search(cfg, FakePolicy(right_rate=0.0, choices=1, length=6))
    assert ts.plans.get("probe", 0) > 0
    probed = [s for s in policy.starts if s != 0]
    assert probed and all(tree.nodes[s].kind == "step" for s in probed)


def test_same_seed_same_tree_other_seed_other_tree():
    def texts(seed):
        cfg = SearchConfig(simulations=15, enough_correct=0, seed=seed, parallel=1)
        _, tree, _ = search(cfg, FakePolicy(choices=3), seed=seed)
        return [(n.parent, n.text) for n in tree.nodes]

    assert texts(1) == texts(1)
    assert texts(1) != texts(2)


def test_empty_rollouts_end_at_their_start_not_a_crash():
    cfg = SearchConfig(simulations=5, enough_correct=0)
    _, tree, _ = search(cfg, FakePolicy(empty=True))
    assert len(tree.nodes) == 1 and tree.root.visits == 5
    tree.check()


def test_tokens_and_prompt_tokens_are_metered():
    cfg = SearchConfig(simulations=8, enough_correct=0, critics=1, parallel=1)
    policy = FakePolicy(right_rate=0.4, length=3)
    _, tree, policy = search(cfg, policy)
    critics = len(policy.proposals)
    assert tree.stats.prompt_tokens == 11 * len(policy.starts) + 13 * critics
    assert tree.stats.generated_tokens == policy.generated


def test_stats_and_ratings_after_run_search():
    tree = Tree.new("q", "42")
    cfg = SearchConfig(simulations=12, enough_correct=0)
    asyncio.run(run_search(tree, FakePolicy(), FakeValuer(), fake_grader, cfg, random.Random(0)))
    assert tree.stats.simulations == 12
    assert tree.stats.correct_leaves == sum(1 for n in tree.nodes if n.terminal and n.correct)
    assert all(n.rating in ("positive", "negative", "unknown") for n in tree.nodes)
    assert tree.root.rating == "unknown"
    tree.check()


def test_without_gold_answers_are_valued_not_graded():
    valuer = FakeValuer(default=0.8)
    cfg = SearchConfig(simulations=6, enough_correct=1)
    ts, tree, _ = search(cfg, valuer=valuer, answer=None)
    terminals = [n for n in tree.nodes if n.terminal]
    assert terminals and all(n.correct is None and n.q_estimate == 0.8 for n in terminals)
    assert tree.stats.simulations == 6  # enough_correct cannot fire without a gold answer
    assert valuer.calls == len(terminals)  # a merged answer is valued once


def test_config_checks():
    with pytest.raises(ValueError, match="simulations"):
        SearchConfig(simulations=0)
    with pytest.raises(ValueError, match="rollout value mode is gone"):
        SearchConfig(value_mode="rollout")
    with pytest.raises(ValueError, match="critics"):
        SearchConfig(critics=-1)
    with pytest.raises(ValueError, match="finite"):
        SearchConfig(c_puct=float("nan"))
    with pytest.raises(ValueError, match="widen"):
        SearchConfig(widen=-1.0)
    older = SearchConfig().to_dict()
    del older["widen"]  # a manifest written before the setting: it searched without widening
    assert SearchConfig.shaping(older) == SearchConfig(widen=0.0).result_settings()
    assert SearchConfig.shaping(older) != SearchConfig(widen=1.0).result_settings()
    assert SearchConfig().max_tokens >= 2000 and SearchConfig().max_depth >= 20  # long solutions fit
