"""The engine contract (tests/engines/contract.py) on the hf engine; tests/vllm runs the same
tests on the vllm and openai engines against vLLM's CPU build."""

from __future__ import annotations

import pytest
from contract import EngineContract


@pytest.fixture(scope="module")
def engine(hf):
    return hf


class TestHFEngine(EngineContract):
    pass
