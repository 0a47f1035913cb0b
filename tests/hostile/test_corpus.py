"""Every reading subcommand against every hostile input of the corpus (tests/hostile/corpus.py).

What must hold for each (input, command):
- no exception escapes (the CLI runs in-process here, so a traceback fails the test);
- the exit code is 0, 1 (bad data) or 2 (bad usage); a non-zero exit prints one `error:`
  line that names the input (the file, or a file inside the folder);
- `validate` gives the verdict the corpus states, with a message naming the problem;
- whatever `validate` accepts, the other readers read (exit 0, or 2 where the command does
  not take that kind of file); whatever it refuses, export skips and counts or refuses;
- a command that failed leaves no output that looks finished.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from corpus import CASES, VALID_FOR_EXPORT, Case  # noqa: E402

from cotgen import hub  # noqa: E402
from cotgen.errors import UsageError  # noqa: E402

COMMANDS = ("validate", "export-openlongcot", "export-marco", "stats", "inspect", "view", "dedupe", "push")
STOP = "test: stop before the network"


def params() -> list:
    return [
        pytest.param(c, command, id=f"{c.name}-{command}", marks=[pytest.mark.slow] if c.large else [])
        for c in CASES for command in COMMANDS
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each case's input, built once for all commands (the large ones take seconds)."""
    cache: dict[str, Path] = {}

    def get(c: Case) -> Path:
        if c.name not in cache:
            cache[c.name] = c.build(tmp_path_factory.mktemp(c.name))
        return cache[c.name]

    return get


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def finished_outputs(out: Path) -> list[str]:
    """Files under `out` that look like finished output (not temporary, not a marker of failure)."""
    if not out.exists():
        return []
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and not p.name.startswith("."))


@pytest.mark.parametrize(("c", "command"), params())
def test_hostile_input(c: Case, command: str, built, cli, tmp_path, monkeypatch):
    path = built(c)
    out = tmp_path / "out"
    if command == "validate":
        r = cli("validate", path, "--json")
        expected = {"valid": 0, "invalid": 1, "unreadable": 1, "usage": 2}[c.verdict]
        assert r.code == expected, (r.code, r.out[-2000:], r.err[-2000:])
        if c.verdict == "usage":
            assert str(path) in r.err and c.needle in r.err
            return
        reports = [json.loads(line) for line in r.out.splitlines()]
        findings = [e for rep in reports for e in rep["errors"] if e["severity"] == "error"]
        if c.verdict == "valid":
            assert not findings
            return
        assert findings, reports
        rows = {e["row"] for e in findings}
        if c.verdict == "unreadable":
            assert None in rows, findings
        else:
            assert rows - {None}, findings
        assert any(c.needle in e["message"] for e in findings), findings
        return

    if command.startswith("export-"):
        r = cli("export", path, "-f", command.removeprefix("export-"), "-o", out, "--json")
    elif command == "stats":
        r = cli("stats", path, "--json")
    elif command == "inspect":
        r = cli("inspect", path, "--json")
    elif command == "view":
        r = cli("view", path, "-o", out)
    elif command == "dedupe":
        r = cli("dedupe", path, "-o", out, "--json", "--quiet")
    else:
        def stop(_token):
            raise UsageError(STOP)

        monkeypatch.setattr(hub, "_token", stop)
        r = cli("push", path, "--repo", "me/corpus", "--endpoint", "http://127.0.0.1:9", "--json")

    assert r.code in (0, 1, 2), r.code
    if r.code != 0:
        lines = error_lines(r.err)
        assert lines, r.err[-2000:]
        assert str(path) in r.err or STOP in r.err, r.err[-2000:]
        assert len(r.err) < 20_000, "a huge message"
        # Nothing half-written left looking finished.
        assert finished_outputs(out) == [], finished_outputs(out)

    if c.verdict == "valid":
        if command == "push":
            assert STOP in r.err or r.code == 2, r.err[-2000:]
        elif command == "inspect" and c.name in VALID_FOR_EXPORT:
            assert r.code in (1, 2) and "no tree with row 0" in r.err or r.code == 2
        else:
            assert r.code in (0, 2), r.err[-2000:]
        if command.startswith("export-") and r.code == 0:
            summary = json.loads(r.out)
            bad = [k for k in summary["skipped"] if k.startswith(("invalid", "unreadable"))]
            assert not bad, summary["skipped"]
    else:
        # validate refused it: push refuses before any upload; export skips and counts it
        # or refuses; stats counts it apart or refuses; inspect, dedupe refuse or do not
        # take the file.
        if command == "push":
            assert r.code in (1, 2) and STOP not in r.err, r.err[-2000:]
        if command.startswith("export-") and r.code == 0:
            summary = json.loads(r.out)
            assert summary["trees_skipped"] >= 1, summary
        if command == "stats" and r.code == 0:
            figures = json.loads(r.out)
            assert figures["invalid_trees"] >= 1 or figures["trees"] == 0 or c.verdict == "unreadable", figures
    if command == "dedupe" and r.code == 0 and (c.tree_input or c.name.startswith("marco")):
        # What dedupe writes from trees or Marco-o1 records is valid: refused rows never
        # pass through, duplicates are what it removes.
        check = cli("validate", out)
        assert check.code == 0, check.err[-2000:]
