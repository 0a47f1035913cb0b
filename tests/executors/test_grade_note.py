"""An answer whose grading ran out of time (or whose grading child died) is graded wrong, and
the tree says why on that node (`grade_note`), through the shard, validate and the readers."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from scripted_engine import ScriptedEngine

from cotgen.engines.base import Completion
from cotgen.engines.config import EngineConfig
from cotgen.io.trees import iter_input_trees
from cotgen.search import SearchConfig
from cotgen.synthesize import RunConfig, run
from cotgen.tree import Node, Tree, broken_invariants
from cotgen.verify import GradingProcess


class AnsweringEngine(ScriptedEngine):
    """Every completion states a final answer the grading child has to parse (no plain number)."""

    async def generate(self, prompts, params):
        return [[Completion(text="So the answer is \\boxed{\\frac{3}{4}}", tokens=3, finish_reason="stop",
                            logprobs=[-1.0] * 3) for _ in range(params.n)] for _ in prompts]


def _problems(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "What is 1/2?", "answer": "0.5"}) + "\n")
    return str(path)


def test_a_timed_out_grading_is_recorded_on_its_node_and_read_back(tmp_path, monkeypatch):
    # The grading child is killed at once: the hard limit a pathological answer runs into.
    # A grader of its own: the process-wide one caches verdicts, this one included.
    import cotgen.verify

    process = GradingProcess()
    monkeypatch.setattr(cotgen.verify, "_PROCESS", process)
    monkeypatch.setattr(GradingProcess, "hard_limit", staticmethod(lambda timeout: 0.001))
    out = tmp_path / "run"
    try:
        run(RunConfig(problems=_problems(tmp_path), out=out), SearchConfig(simulations=1, parallel=1),
            EngineConfig(), engine=AnsweringEngine())
    finally:
        process.close()
    (tree,) = iter_input_trees([out])
    answers = [n for n in tree.nodes if n.terminal]
    assert answers and all(n.correct is False for n in answers)
    assert all(n.grade_note == "grading took over 0.001 s" for n in answers)
    assert all(n.grade_note is None for n in tree.nodes if not n.terminal)
    assert tree.error is None  # the tree did not fail: it is not searched again on resume
    assert broken_invariants(tree) == []


def test_an_ordinary_verdict_has_no_note(tmp_path):
    out = tmp_path / "run"
    run(RunConfig(problems=_problems(tmp_path), out=out), SearchConfig(simulations=1, parallel=1),
        EngineConfig(), engine=AnsweringEngine())
    (tree,) = iter_input_trees([out])
    answers = [n for n in tree.nodes if n.terminal]
    assert answers and all(n.correct is False and n.grade_note is None for n in answers)


def test_a_shard_written_before_grade_note_reads_with_none_on_the_fast_path(tmp_path, monkeypatch):
    from cotgen.io.writers import TreeShardWriter

    tree = Tree.new("What is 1/2?", "0.5")
    tree.add(0, "step", "So the answer is \\boxed{3/4}", terminal=True, correct=False, grade_note="grading took over 20 s")
    path = TreeShardWriter(tmp_path).write([tree])
    table = pq.read_table(path)
    nodes = table.column("nodes").combine_chunks()
    import pyarrow as pa

    flat = nodes.flatten()
    keep = [f for f in nodes.type.value_type if f.name != "grade_note"]
    old = pa.ListArray.from_arrays(nodes.offsets, pa.StructArray.from_arrays(
        [flat.field(f.name) for f in keep], fields=keep))
    pq.write_table(table.set_column(table.schema.get_field_index("nodes"), "nodes", old), path)
    # read column-wise, not row by row (Tree.from_row): old shards keep export's speed
    monkeypatch.setattr(Tree, "from_row", classmethod(lambda cls, row: pytest.fail("read row by row")))
    (back,) = iter_input_trees([tmp_path])
    assert [n.grade_note for n in back.nodes] == [None, None] and back.nodes[1].correct is False


def test_validate_refuses_a_note_on_a_node_that_is_not_terminal_or_not_text():
    tree = Tree.new("q", "1")
    tree.nodes.append(Node(id=1, parent=0, kind="step", text="think", grade_note="grading took over 20 s"))
    assert "node 1: 'grade_note' is set on a node that is not terminal" in broken_invariants(tree)
    tree.nodes[1].grade_note = 5
    assert any("field 'grade_note' is an int" in p for p in broken_invariants(tree))


def test_inspect_shows_the_note_beside_the_verdict(cli, tmp_path):
    from cotgen.io.writers import TreeShardWriter

    tree = Tree.new("What is 1/2?", "0.5")
    tree.add(0, "step", "So the answer is \\boxed{3/4}", terminal=True, correct=False, grade_note="grading took over 20 s")
    TreeShardWriter(tmp_path / "run").write([tree])
    r = cli("inspect", tmp_path / "run", "--width", 200)
    assert r.code == 0, r.err
    assert "✗ wrong (grading took over 20 s)" in r.out
