"""Shared fixtures: offline Hub, the ../shared folder, the tiny model, a CLI runner."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: never reach the network from tests.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")

import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser import chromium, offline  # noqa: F401  (fixtures of the browser tests)

# A job started in the background by a non-interactive shell (`make test &`, nohup, some CI
# runners) inherits SIGINT ignored, and so would every `cotgen` the tests start: the Ctrl-C
# tests would then see a run that never stops. Take SIGINT back as a terminal has it; the
# children exec'd from here then start with the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COTGEN_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared (real data and fixtures). Skips visibly when absent; fails under CI=true."""
    if not (SHARED / "fixtures").is_dir():
        message = f"{SHARED} is absent: compat tests need ../shared (or COTGEN_SHARED)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny random-weight Qwen2 model, built once per test session."""
    from cotgen.tiny_model import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-model")
    build_tiny_model(out)
    return out


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run `cotgen ARGS...` in-process; returns exit code, stdout and stderr."""
    from cotgen.cli.main import run

    def invoke(*args: object) -> CliResult:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke
