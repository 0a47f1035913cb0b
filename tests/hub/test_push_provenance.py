"""`cotgen push` puts provenance on the card (issue 20 item 4): which model wrote the rows,
where the problems came from, which grader verified them, and where each row's own is."""

from __future__ import annotations

from cotgen.export import export
from cotgen.formats import make_format
from cotgen.io.writers import TreeShardWriter
from cotgen.tree import Tree
from cotgen.verify import grader_id

REPO = "me/provenance"
LOCAL_MODEL = "/home/someone/models/my-reasoner"


def make_tree(i: int) -> Tree:
    tree = Tree.new(f"What is {i} + {i}? Problem number {i}.", answer=str(2 * i), model=LOCAL_MODEL,
                    source=f"openai/gsm8k/train#{i}")
    step = tree.add(0, "step", f"Adding {i} and {i} " + "carefully " * 10, rating="positive", tokens=9)
    tree.add(step.id, "conclusion", f"So the answer is \\boxed{{{2 * i}}}", terminal=True, correct=True,
             rating="positive", tokens=4)
    return tree


def provenance_block(card: str) -> str:
    block = card[card.index("### Provenance"):]
    return block[: block.index("\n### ", 1)]  # the sample row follows


def test_card_of_a_run_lists_generator_source_and_grader(hub, run_push, tmp_path):
    writer = TreeShardWriter(tmp_path / "run", settings={"model": LOCAL_MODEL})
    writer.write([make_tree(i) for i in range(3)])
    writer.update_manifest(problems_source="openai/gsm8k/train")
    r = run_push(tmp_path / "run", "--repo", REPO)
    assert r.code == 0, r.err
    block = provenance_block(hub.files(REPO)["README.md"].decode())
    assert "- generator: `my-reasoner` (3 rows)" in block and "/home/someone" not in block
    assert "- problems from: `openai/gsm8k/train` (3 rows)" in block
    assert f"- verified by: `{grader_id()}` (3 rows)" in block


def test_card_of_exports_lists_provenance_and_where_each_row_has_it(hub, run_push, tmp_path):
    TreeShardWriter(tmp_path / "run").write([make_tree(i) for i in range(4)])
    export([tmp_path / "run"], make_format("sft"), tmp_path / "sft")
    export([tmp_path / "run"], make_format("marco"), tmp_path / "marco")
    assert run_push(tmp_path / "sft", "--repo", REPO).code == 0
    r = run_push(tmp_path / "marco", "--repo", REPO)
    assert r.code == 0, r.err
    card = hub.files(REPO)["README.md"].decode()
    sft, marco = card.split("## Config `sft`")[1], card.split("## Config `marco`")[1].split("## Config")[0]
    for block in (provenance_block(sft), provenance_block(marco)):
        assert "- generator: `my-reasoner` (4 rows)" in block
        assert "- problems from: `openai/gsm8k/train` (4 rows)" in block
        assert f"- verified by: `{grader_id()}` (4 rows)" in block
        assert "truncated rows (a node cut by a token limit): 0; tokens generated: 52" in block
    assert "the columns `source`, `generator`" in provenance_block(sft)
    assert "sidecar `_<split>.provenance.jsonl`" in provenance_block(marco)


def test_card_of_a_deduped_export_reads_the_rows_columns(hub, run_push, tmp_path):
    """dedupe writes no provenance summary; the rows' own columns say it."""
    from cotgen.dedupe import dedupe

    TreeShardWriter(tmp_path / "run").write([make_tree(i) for i in range(4)])
    export([tmp_path / "run"], make_format("prm"), tmp_path / "prm")
    dedupe([tmp_path / "prm"], tmp_path / "prm-dedup")
    r = run_push(tmp_path / "prm-dedup", "--repo", REPO)
    assert r.code == 0, r.err
    block = provenance_block(hub.files(REPO)["README.md"].decode())
    assert "- generator: `my-reasoner` (4 rows)" in block
    assert "- problems from: `openai/gsm8k/train` (4 rows)" in block
    assert "tokens generated: 52" in block and "the columns `source`" in block
