"""Property: any tree either survives OpenLongCoT export -> parse -> export unchanged, or is refused."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cotgen.formats.base import ExportRefused
from cotgen.formats.openlongcot import KIND_TAGS, TAGS, parse_openlongcot, to_openlongcot
from cotgen.tree import RATINGS, Tree

# Pieces a model really writes that come close to the format's own syntax.
NASTY = [
    *TAGS, *KIND_TAGS.values(), "<unknow_rating>", "<start_of_meta>", "<end_of_", "<start_of_thought",
    "end_of_thought>", "<<2*66=132>>", "<", ">", "<>", "</Thought>", "<b>", "_rating>", "<x_rating>",
    "\n", "\r\n", "\t", "  ", " ", "\u00a0", "\ufffd", "é", "数学", "🙂", "\\boxed{1}", "-1", "0",
]  # fmt: skip
nasty_text = st.lists(
    st.one_of(st.sampled_from(NASTY), st.text(max_size=12)), min_size=0, max_size=6
).map("".join)


@st.composite
def trees(draw):
    tree = Tree.new(draw(nasty_text))
    for _ in range(draw(st.integers(0, 7))):
        parent = draw(st.integers(0, len(tree.nodes) - 1))
        kind = draw(st.sampled_from(["step", "step", "critic", "refine", "conclusion"]))
        tree.add(parent, kind, draw(nasty_text), rating=draw(st.sampled_from(RATINGS)))
    return tree


def fields(tree: Tree) -> list[tuple]:
    return [(n.id, n.parent, n.kind, n.text, n.rating) for n in tree.preorder()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), root_rating=st.booleans(), separator=st.sampled_from(["\n", " ", "\r\n", "\n\n\t"]))
def test_export_parse_export_is_stable_or_refused(tree, root_rating, separator):
    try:
        text = to_openlongcot(tree, root_rating=root_rating, separator=separator)
    except ExportRefused:
        # Refusal is only for texts that are empty or could be mistaken for syntax.
        assert any(not n.text or "<" in n.text for n in tree.nodes[1:]) or not tree.problem or "<" in tree.problem
        return
    back = parse_openlongcot(text)
    assert back.problem == tree.problem
    expected = fields(tree)
    if not root_rating:
        expected[0] = (*expected[0][:4], "unknown")  # no root rating written, none read back
    assert fields(back) == expected
    assert to_openlongcot(back, root_rating=root_rating, separator=separator) == text


@settings(max_examples=200, deadline=None)
@given(tree=trees())
def test_texts_without_angle_brackets_are_never_refused(tree):
    for node in tree.nodes:
        node.text = node.text.replace("<", "[") or "x"
    tree.problem = tree.nodes[0].text
    back = parse_openlongcot(to_openlongcot(tree))
    assert fields(back) == [(*f[:4], "unknown" if f[1] == -1 else f[4]) for f in fields(tree)]
