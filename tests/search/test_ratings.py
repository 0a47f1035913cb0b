from cotgen.search.ratings import assign_ratings, monte_carlo_values
from cotgen.tree import Tree


def build():
    t = Tree.new("q", "4")
    a = t.add(0, "step", "a", q_estimate=0.1)  # 1
    t.add(a.id, "conclusion", "\\boxed{4}", terminal=True, correct=True)  # 2
    t.add(a.id, "conclusion", "\\boxed{5}", terminal=True, correct=False)  # 3
    b = t.add(0, "step", "b", q_estimate=0.9)  # 4
    t.add(b.id, "step", "\\boxed{5}", terminal=True, correct=False)  # 5
    t.add(b.id, "step", "\\boxed{6}", terminal=True, correct=False)  # 6
    t.add(b.id, "step", "\\boxed{4}", terminal=True, correct=True)  # 7
    cr = t.add(b.id, "critic", "b is wrong")  # 8
    t.add(cr.id, "refine", "b fixed", q_estimate=0.7)  # 9
    t.add(0, "step", "c", q_estimate=0.3)  # 10
    t.add(0, "step", "d")  # 11: no leaf, no estimate
    return t


def test_soft_estimate_decides_where_leaves_exist():
    t = assign_ratings(build())
    r = {n.id: n.rating for n in t.nodes}
    assert monte_carlo_values(t)[1] == (1, 2)
    assert r[1] == "positive"  # 1/2 >= 0.5, although its estimate was 0.1
    assert monte_carlo_values(t)[4] == (1, 3)
    assert r[4] == "negative"  # 1/3 < 0.5, although its estimate was 0.9
    assert (r[2], r[3], r[7], r[5]) == ("positive", "negative", "positive", "negative")


def test_estimate_decides_without_leaves_and_critics_stay_unknown():
    t = assign_ratings(build())
    r = {n.id: n.rating for n in t.nodes}
    assert r[9] == "positive" and r[10] == "negative"
    assert r[8] == "unknown" and r[0] == "unknown" and r[11] == "unknown"
    t.check()


def test_a_fixed_step_does_not_earn_its_fix():
    from cotgen.tree import Tree

    t = Tree.new("What is 2 + 3 * 4?", "14")
    wrong = t.add(0, "step", "2 + 3 = 5.")
    critic = t.add(wrong.id, "critic", "Multiplication comes first.")
    fix = t.add(critic.id, "refine", "3 * 4 = 12, so 14.")
    t.add(fix.id, "conclusion", "\\boxed{14}", terminal=True, correct=True)
    t.add(wrong.id, "conclusion", "\\boxed{20}", terminal=True, correct=False)
    assign_ratings(t)
    assert t.nodes[wrong.id].rating == "negative"  # only its own leaf (wrong) counts
    assert t.nodes[fix.id].rating == "positive"
    assert monte_carlo_values(t)[0] == (1, 2)  # the root reaches both leaves
