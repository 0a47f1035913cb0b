"""The engine tests' shared fixture: the hf engine every contract compares against."""

from __future__ import annotations

import asyncio

import pytest
from contract import CONTEXT

from cotgen.engines.config import EngineConfig
from cotgen.engines.hf import HFEngine
from cotgen.models import resolve_model


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    """The hf engine on the tiny model, at the contract's context length."""
    eng = HFEngine(resolve_model(str(tiny_model_dir)), EngineConfig(model=str(tiny_model_dir), max_model_len=CONTEXT))
    yield eng
    asyncio.run(eng.close())
