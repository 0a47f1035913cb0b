"""The vllm engine: importable without vllm, and clear refusals; real runs need a GPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from cotgen.config import EngineConfig
from cotgen.engines import build_engine
from cotgen.errors import MissingExtraError, RunError

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_module_imports_without_vllm():
    code = "import sys, cotgen.engines.vllm, cotgen.engines; print('vllm' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here")
def test_missing_vllm_is_a_clear_message():
    with pytest.raises(MissingExtraError, match=r"pip install 'cotgen\[vllm\]'"):
        build_engine(EngineConfig(engine="vllm", model="qwen2.5-0.5b"))


@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed here")
def test_no_gpu_is_a_clear_message():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RunError, match="needs a CUDA GPU"):
        build_engine(EngineConfig(engine="vllm", model="tiny"))


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_VLLM, reason="needs vllm and a CUDA GPU; this machine has neither")
def test_vllm_generates_on_the_tiny_model(tiny_model_dir):
    import asyncio

    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    engine = build_engine(EngineConfig(engine="vllm", model=str(tiny_model_dir), gpu_memory_utilization=0.2))

    async def main():
        out = await engine.generate(["The answer is"], n=2, max_tokens=8, temperature=1.0, seed=1)
        scores = await engine.score(["The answer is"], ["<positive_rating>"])
        await engine.close()
        return out, scores

    out, scores = asyncio.run(main())
    assert len(out[0]) == 2 and all(len(c.logprobs) == c.tokens for c in out[0])
    assert scores[0]["<positive_rating>"] < 0
