"""The hard rule (Math-Shepherd's hard estimate) with rollout consensus, on hand-built trees."""

from cotgen.search.ratings import assign_ratings, monte_carlo_values
from cotgen.tree import Tree


def answer(t, parent, text, correct, visits=1):
    return t.add(parent, "step", text, terminal=True, correct=correct, visits=visits)


def build():
    """root -> a (2 rollouts: one right, one wrong); root -> b (3 rollouts, all wrong);
    b's children split: b1 took 2 of them, b2 one."""
    t = Tree.new("q", "4")
    a = t.add(0, "step", "a", visits=2)  # 1
    answer(t, a.id, "\\boxed{4}", True)  # 2
    answer(t, a.id, "\\boxed{5}", False)  # 3
    b = t.add(0, "step", "b", visits=3)  # 4
    b1 = t.add(b.id, "step", "b1", visits=2)  # 5
    answer(t, b1.id, "\\boxed{6}", False, visits=2)  # 6
    b2 = t.add(b.id, "step", "b2", visits=1)  # 7
    answer(t, b2.id, "\\boxed{7}", False)  # 8
    return t


def test_positive_where_a_correct_answer_is_reached():
    t = assign_ratings(build())
    r = {n.id: n.rating for n in t.nodes}
    assert monte_carlo_values(t)[1] == (1, 2)
    assert r[1] == "positive"  # one of two rollouts right: the soft share 0.5 is the Q, not the label
    assert (r[2], r[3]) == ("positive", "negative")  # a graded answer is rated by its verdict
    assert r[0] == "unknown"


def test_negative_after_k_failures_where_the_parent_reaches_a_correct_answer():
    t = Tree.new("q", "4")
    s = t.add(0, "step", "s", visits=4)
    good = t.add(s.id, "step", "good", visits=1)
    answer(t, good.id, "\\boxed{4}", True)
    bad = t.add(s.id, "step", "bad", visits=3)  # most rollouts took it, none ended right
    answer(t, bad.id, "\\boxed{3}", False, visits=3)
    assign_ratings(t, negative_after=3)
    assert (s.rating, good.rating, bad.rating) == ("positive", "positive", "negative")
    assign_ratings(t, negative_after=4)  # too few tries for the hard rule
    assert bad.rating == "unknown"


def test_consensus_places_the_error_where_no_correct_answer_was_found():
    t = assign_ratings(build())
    r = {n.id: n.rating for n in t.nodes}
    # Nothing under b is right, and b's parent (the root) reaches a correct answer: b is negative.
    assert r[4] == "negative"
    # Under b (no correct answer at all), b1, which 2 of b's 3 rollouts took, is unknown; b2 negative.
    assert r[5] == "unknown" and r[7] == "negative"
    t = assign_ratings(build(), consensus=False)
    assert {t.nodes[5].rating, t.nodes[7].rating} == {"negative"}  # the bare hard rule


def test_unanswered_and_truncated_ends_are_failed_tries_only_with_a_gold_answer():
    t = Tree.new("q", "4")
    s = t.add(0, "step", "s", visits=2)
    t.add(s.id, "step", "ran out", truncated=True, visits=1)
    t.add(s.id, "step", "stopped without an answer", visits=1)
    assert monte_carlo_values(t, failed_ends=True)[s.id] == (0, 2)
    assert monte_carlo_values(t)[s.id] == (0, 0)  # an older tree's leaf was never expanded, not failed
    t.config = {"samples": 4}  # what a rollout search records
    assert monte_carlo_values(t)[s.id] == (0, 2)
    t.answer = None
    assert monte_carlo_values(t, failed_ends=True)[s.id] == (0, 0)


def test_estimate_decides_without_graded_leaves_and_critics_stay_unknown():
    t = Tree.new("q", None)
    a = t.add(0, "step", "a", q_estimate=0.9)
    b = t.add(0, "step", "b", q_estimate=0.1)
    c = t.add(b.id, "critic", "b is wrong")
    assign_ratings(t)
    assert (a.rating, b.rating, c.rating) == ("positive", "negative", "unknown")
    t.check()


def test_a_fixed_step_does_not_earn_its_fix():
    t = Tree.new("What is 2 + 3 * 4?", "14")
    s = t.add(0, "step", "Start.", visits=3)
    right = t.add(s.id, "step", "3 * 4 = 12.", visits=1)
    answer(t, right.id, "\\boxed{14}", True)
    wrong = t.add(s.id, "step", "2 + 3 = 5.", visits=2)
    critic = t.add(wrong.id, "critic", "Multiplication comes first.", visits=1)
    fix = t.add(critic.id, "refine", "3 * 4 = 12, so 14.", visits=1)
    answer(t, fix.id, "\\boxed{14}", True)
    answer(t, wrong.id, "\\boxed{20}", False)
    assign_ratings(t)
    assert wrong.rating == "negative"  # only its own leaf (wrong) counts
    assert fix.rating == "positive"
    assert monte_carlo_values(t)[0] == (2, 3)
