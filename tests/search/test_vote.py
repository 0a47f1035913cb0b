"""The tree's vote and the value-weighted vote (cotgen.search.vote), on hand-built trees."""

from cotgen.answers import extract_answer
from cotgen.search.vote import answer_leaf, ballots, estimate, tally, vote, weighted_vote, winner
from cotgen.tree import Tree


def answered(t, parent, answer, q, visits=1):
    return t.add(parent, "step", f"so \\boxed{{{answer}}}", terminal=True, visits=visits, q_estimate=q)


def build():
    """root -> a -> 5 (3 rollouts, valued 0.2); root -> b -> 7 (2 rollouts, valued 0.9);
    root -> c -> 7 (1 rollout, valued 0.3); root -> d (no answer)."""
    t = Tree.new("q", None)
    a = t.add(0, "step", "a", visits=3)
    answered(t, a.id, "5", 0.2, visits=3)
    b = t.add(0, "step", "b", visits=2)
    answered(t, b.id, "7", 0.9, visits=2)
    c = t.add(0, "step", "c", visits=1)
    answered(t, c.id, "7", 0.3)
    t.add(0, "step", "d ran out", truncated=True, visits=1)
    return t


def test_ballots_are_answered_leaves_with_their_rollouts():
    t = build()
    assert [(b.answer, b.rollouts) for b in ballots(t, extract_answer)] == [("5", 3), ("7", 2), ("7", 1)]
    assert tally(ballots(t, extract_answer)) == {"5": 3.0, "7": 3.0}


def test_the_weighted_vote_sums_each_rollouts_value_per_answer():
    t = build()
    sums = tally(ballots(t, extract_answer), estimate)
    assert abs(sums["5"] - 0.6) < 1e-9 and abs(sums["7"] - 2.1) < 1e-9
    assert weighted_vote(t, extract_answer).answer == "7"
    # The plain vote is a 3-3 tie, which goes to the answer stated first.
    assert vote(t, extract_answer).answer == "5"


def test_many_doubtful_rollouts_outweigh_one_confident_one():
    t = Tree.new("q", None)
    answered(t, 0, "1", 0.9)
    answered(t, 0, "2", 0.4, visits=3)  # 1.2 > 0.9
    assert weighted_vote(t, extract_answer).answer == "2"
    assert winner(ballots(t, extract_answer), lambda n: 1.0 if "1" in n.text else 0.0).answer == "1"


def test_an_unvalued_leaf_counts_its_backed_up_value_and_no_answer_no_winner():
    t = Tree.new("q", "4")
    t.add(0, "step", "\\boxed{4}", terminal=True, correct=True, value=1.0)
    t.add(0, "step", "\\boxed{3}", terminal=True, correct=False, value=0.0, visits=2)
    assert weighted_vote(t, extract_answer).answer == "4"
    assert vote(t, extract_answer).answer == "3"
    empty = Tree.new("q", None)
    empty.add(0, "step", "no answer here", visits=1)
    assert vote(empty, extract_answer) is None and weighted_vote(empty, extract_answer) is None


def test_answer_leaf_is_the_winning_answers_heaviest_leaf():
    t = build()
    assert answer_leaf(t, extract_answer).id == 4  # "7": b's leaf (2 x 0.9) outweighs c's (1 x 0.3)
    t.nodes[6].q_estimate = 0.95
    t.nodes[6].visits = 2  # c's leaf now weighs 1.9
    assert answer_leaf(t, extract_answer).id == 6
    assert answer_leaf(Tree.new("q", None), extract_answer) is None


def test_a_leaf_valued_nan_or_infinite_adds_nothing_and_never_breaks_the_vote():
    """Trees read from elsewhere may carry NaN or infinite values (cotgen's search clamps NaN
    to 0); a NaN tally made `winner` find no answer equal to the maximum (StopIteration:
    a traceback in `cotgen view`)."""
    t = Tree.new("q", None)
    answered(t, 0, "5", float("nan"))
    answered(t, 0, "7", 0.4)
    answered(t, 0, "9", float("inf"), visits=2)
    answered(t, 0, "9", float("-inf"))
    assert tally(ballots(t, extract_answer), estimate) == {"5": 0.0, "7": 0.4, "9": 0.0}
    assert weighted_vote(t, extract_answer).answer == "7"
    lone = Tree.new("q", None)
    answered(lone, 0, "5", float("nan"))
    assert weighted_vote(lone, extract_answer).answer == "5"
    assert answer_leaf(lone, extract_answer).id == 1
