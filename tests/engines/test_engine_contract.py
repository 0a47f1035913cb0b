"""The engine contract (tests/engines/contract.py) on the hf engine; tests/vllm runs the same
tests on the vllm and openai engines against vLLM's CPU build."""

from __future__ import annotations

import asyncio

import pytest
from contract import CONTEXT, EngineContract

from cotgen.config import EngineConfig
from cotgen.engines.hf import HFEngine
from cotgen.models import resolve_model


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    eng = HFEngine(resolve_model(str(tiny_model_dir)), EngineConfig(model=str(tiny_model_dir), max_model_len=CONTEXT))
    yield eng
    asyncio.run(eng.close())


@pytest.fixture(scope="module")
def engine(hf):
    return hf


class TestHFEngine(EngineContract):
    pass
