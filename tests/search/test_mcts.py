import asyncio
import random

import pytest
from search_fakes import FakePolicy, FakeValuer, fake_grader

from cotgen.search import SearchConfig, TreeSearch, run_search
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
    kids = tree.children()
    for n in tree.nodes:
        if kids[n.id]:
            assert n.visits == 1 + sum(c.visits for c in kids[n.id]), n.id


@pytest.mark.parametrize("parallel", [1, 4])
def test_visits_add_up_and_virtual_loss_is_released(parallel):
    cfg = SearchConfig(simulations=40, branch=3, max_depth=6, enough_correct=0, critic_rate=0.3, parallel=parallel)
    ts, tree, policy = search(cfg)
    tree.check()
    assert_visits_add_up(tree)
    assert tree.root.visits == 40 == tree.stats.simulations
    assert ts.pending == {} and ts.expanding == {}
    if parallel > 1:
        # While several simulations ran, the policy saw their losses on the root.
        assert max(p.get(0, 0.0) for p in policy.pending_seen) >= 2.0
    else:
        assert all(p.get(0) == 1.0 for p in policy.pending_seen)


def test_virtual_loss_is_released_when_the_policy_fails():
    class Failing(FakePolicy):
        async def propose(self, tree, proposal):
            if len(self.calls) >= 3:
                raise RuntimeError("engine died")
            return await super().propose(tree, proposal)

    cfg = SearchConfig(simulations=20, enough_correct=0, parallel=3)
    tree = Tree.new("q", "1")
    ts = TreeSearch(tree, Failing(), FakeValuer(), fake_grader, cfg, random.Random(0))
    with pytest.raises(RuntimeError, match="engine died"):
        asyncio.run(ts.run())
    assert ts.pending == {} and ts.expanding == {}
    tree.check()


def test_second_simulation_follows_puct():
    # Root children get values 0.2, 0.9, 0.5 with equal priors: the next expansion is node 2.
    cfg = SearchConfig(simulations=2, branch=3, enough_correct=0, critic_rate=0.0, parallel=1)
    policy = FakePolicy(answer_rate=0.0)

    async def same_logprob(tree, proposal, _orig=policy.propose):
        out = await _orig(tree, proposal)
        return [type(c)(text=c.text, tokens=c.tokens, logprob=-1.0) for c in out]

    policy.propose = same_logprob
    ts, tree, policy = search(cfg, policy=policy, valuer=FakeValuer(script=[0.2, 0.9, 0.5]))
    assert [c.parent for c in policy.calls] == [0, 2]
    assert tree.nodes[2].visits == 1 and tree.nodes[1].visits == 0
    assert tree.root.value == pytest.approx((0.2 + 0.9 + 0.5) / 3 / 2 + 0.5 / 2)


def test_early_stop_at_enough_correct():
    cfg = SearchConfig(simulations=50, enough_correct=2, branch=3, parallel=1, critic_rate=0.0)
    ts, tree, _ = search(cfg, policy=FakePolicy(answer_rate=1.0, right_rate=1.0))
    assert tree.stats.correct_leaves >= 2
    assert tree.stats.simulations < 50
    assert sum(1 for n in tree.nodes if n.correct) == tree.stats.correct_leaves


def test_depth_limit_and_conclusions_at_the_bottom():
    cfg = SearchConfig(simulations=60, max_depth=3, branch=2, enough_correct=0, critic_rate=0.0, parallel=2)
    ts, tree, _ = search(cfg, policy=FakePolicy(answer_rate=0.0))
    depth = ts.depth
    assert max(depth.values()) == 3
    for n in tree.nodes:
        if depth[n.id] == 3:
            assert n.kind == "conclusion" and n.terminal and n.correct is not None
    assert_visits_add_up(tree)


def test_critics_and_refines_have_the_right_parents():
    cfg = SearchConfig(simulations=60, max_depth=8, enough_correct=0, critic_rate=0.5, parallel=2)
    _, tree, _ = search(cfg, policy=FakePolicy(answer_rate=0.05))
    by_id = tree.by_id()
    critics = [n for n in tree.nodes if n.kind == "critic"]
    refines = [n for n in tree.nodes if n.kind == "refine"]
    assert critics and refines
    assert all(by_id[c.parent].kind in ("step", "refine") for c in critics)
    assert all(by_id[r.parent].kind == "critic" for r in refines)
    tree.check()


def test_without_refine_critics_are_leaves():
    cfg = SearchConfig(simulations=40, enough_correct=0, critic_rate=0.6, refine=False, parallel=2)
    _, tree, _ = search(cfg, policy=FakePolicy(answer_rate=0.05))
    kids = tree.children()
    critics = [n for n in tree.nodes if n.kind == "critic"]
    assert critics and all(not kids[c.id] for c in critics)
    assert not any(n.kind == "refine" for n in tree.nodes)
    assert_visits_add_up(tree)


def test_same_seed_same_tree_other_seed_other_tree():
    cfg = SearchConfig(simulations=30, enough_correct=0, critic_rate=0.3, parallel=4)

    def rows(seed):
        _, tree, _ = search(cfg, seed=seed)
        return [n.to_dict() for n in tree.nodes]

    assert rows(7) == rows(7)
    assert rows(7) != rows(8)


def test_empty_proposals_make_a_dead_end_not_a_crash():
    cfg = SearchConfig(simulations=5, enough_correct=0, parallel=2)
    ts, tree, _ = search(cfg, policy=FakePolicy(empty=True))
    assert len(tree.nodes) == 1 and tree.root.visits == 5 and 0 in ts.dead


def test_stats_and_ratings_after_run_search():
    cfg = SearchConfig(simulations=30, enough_correct=0, parallel=2)
    tree = Tree.new("q", "42")
    asyncio.run(run_search(tree, FakePolicy(answer_rate=0.3), FakeValuer(), fake_grader, cfg, random.Random(1)))
    s = tree.stats
    assert s.simulations == 30 and s.seconds > 0
    # 5 tokens per candidate from the policy, 1 per valuer call
    assert s.generated_tokens >= 5 * (len(tree.nodes) - 1)
    assert s.correct_leaves == sum(1 for n in tree.nodes if n.correct)
    assert {n.rating for n in tree.nodes[1:]} <= {"positive", "negative", "unknown"}
    assert any(n.rating != "unknown" for n in tree.nodes[1:])
    tree.check()


def test_without_gold_terminals_are_valued_not_graded():
    cfg = SearchConfig(simulations=20, enough_correct=1, parallel=1)
    _, tree, _ = search(cfg, policy=FakePolicy(answer_rate=1.0), answer=None)
    terminals = [n for n in tree.nodes if n.terminal]
    assert terminals and all(n.correct is None and n.q_estimate == 0.5 for n in terminals)
    assert tree.stats.simulations == 20  # no correct leaf can stop it early


def test_config_checks():
    with pytest.raises(ValueError, match="branch"):
        SearchConfig(branch=0)
    with pytest.raises(ValueError, match="value"):
        SearchConfig(value="vibes")
    with pytest.raises(ValueError, match="critic_rate"):
        SearchConfig(critic_rate=1.5)
    assert "parallel" not in SearchConfig().result_settings()
