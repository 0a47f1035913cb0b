"""The single exit point: exit codes, messages kept verbatim, JSON on one line."""

from __future__ import annotations

import json

import pytest

from cotgen.errors import MissingExtraError


def test_usage_exit_codes(cli):
    assert cli().code == 2
    assert cli("no-such-command").code == 2
    r = cli("version")
    assert r.code == 0 and r.out.strip()


@pytest.fixture
def failing_synthesize(monkeypatch):
    """`cotgen synthesize` whose run raises the error a missing extra raises, vllm or not."""
    import cotgen.cli.synthesize as command

    def broken(*args, **kwargs):
        raise MissingExtraError("vllm", "vllm", "the vllm engine")

    monkeypatch.setattr(command, "run", broken)


def test_error_messages_keep_their_brackets(cli, tmp_path, failing_synthesize):
    # rich markup would eat "[vllm]" from "pip install 'cotgen[vllm]'"
    r = cli("synthesize", "--problems", "builtin:arith", "--limit", "1", "--out", tmp_path / "r")
    assert r.code == 2
    assert "pip install 'cotgen[vllm]'" in r.err and "Traceback" not in r.err


def test_debug_shows_the_traceback(cli, tmp_path, monkeypatch, failing_synthesize):
    monkeypatch.setenv("COTGEN_DEBUG", "1")
    with pytest.raises(MissingExtraError):
        cli("synthesize", "--problems", "builtin:arith", "--limit", "1", "--out", tmp_path / "r")


def test_json_is_one_unwrapped_line(cli, tmp_path):
    from cotgen.io.writers import TreeShardWriter
    from cotgen.tree import Tree

    t = Tree.new("a problem [with brackets] " * 10, "1")
    t.add(0, "conclusion", "\\boxed{1}", terminal=True, correct=True)
    TreeShardWriter(tmp_path / "run").write([t])
    r = cli("inspect", tmp_path / "run", "--json")
    assert r.code == 0 and r.out.count("\n") == 1 and len(r.out) > 200
    assert json.loads(r.out)["problem"] == t.problem
