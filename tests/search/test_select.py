import math

import pytest

from cotgen.search.select import effective_q, puct_score, select_child, sibling_priors
from cotgen.tree import Node


def node(id, visits=0, value=0.5, prior=1 / 3):
    return Node(id=id, parent=0, kind="step", text=f"s{id}", visits=visits, value=value, prior=prior)


def test_priors_are_softmax_of_mean_logprobs():
    p = sibling_priors([-1.0, -2.0, -3.0])
    z = math.exp(-1) + math.exp(-2) + math.exp(-3)
    assert p == pytest.approx([math.exp(-1) / z, math.exp(-2) / z, math.exp(-3) / z])
    assert sibling_priors([-1.0, None]) == [0.5, 0.5]
    assert sibling_priors([]) == []


def test_select_child_maximizes_the_puct_formula():
    parent = Node(id=0, parent=-1, kind="problem", text="q", visits=10)
    kids = [node(1, visits=5, value=0.6, prior=0.2), node(2, visits=1, value=0.4, prior=0.5), node(3, visits=3, value=0.7, prior=0.3)]
    c = 1.5
    scores = [k.value + c * k.prior * math.sqrt(10) / (1 + k.visits) for k in kids]
    assert select_child(parent, kids, c).id == kids[scores.index(max(scores))].id == 2
    assert puct_score(0.4, 0.5, 10, 1, c) == pytest.approx(scores[1])


def test_greedy_when_c_puct_is_zero_and_ties_go_to_the_first():
    parent = Node(id=0, parent=-1, kind="problem", text="q", visits=3)
    kids = [node(1, visits=1, value=0.3, prior=0.9), node(2, visits=1, value=0.8, prior=0.05), node(3, visits=1, value=0.8, prior=0.05)]
    assert select_child(parent, kids, 0.0).id == 2


def test_virtual_loss_steers_away_from_a_busy_child():
    parent = Node(id=0, parent=-1, kind="problem", text="q", visits=4)
    kids = [node(1, visits=2, value=0.9), node(2, visits=1, value=0.6)]
    assert select_child(parent, kids, 1.0).id == 1
    assert select_child(parent, kids, 1.0, pending={1: 2.0, 0: 2.0}).id == 2
    assert effective_q(kids[0], 2.0) == pytest.approx(0.45)
    assert effective_q(node(9, visits=0, value=0.7), 0.0) == 0.7  # unvisited: the estimate


def test_no_children_is_an_error():
    with pytest.raises(ValueError):
        select_child(node(0), [], 1.0)
