"""--value prm on vLLM's CPU build: the PRM served by vLLM's pooling runner (token_classify)
scores a path as the hf engine does (make test-vllm)."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("vllm", reason="needs vLLM (CPU build: make vllm-env; run with make test-vllm)")

import vllm_fixtures  # noqa: E402,F401  (a small CPU KV cache)

from cotgen.reward_model import PRM_SETTINGS_FILE, HFRewardModel, VLLMRewardModel  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_prm(tmp_path_factory):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from cotgen.reasoner import packaged_model_path

    out = tmp_path_factory.mktemp("tiny-prm")
    torch.manual_seed(0)
    AutoModelForTokenClassification.from_pretrained(packaged_model_path(), num_labels=2).save_pretrained(out)
    AutoTokenizer.from_pretrained(packaged_model_path()).save_pretrained(out)
    (out / PRM_SETTINGS_FILE).write_text(json.dumps({"layout": "token-classification", "separator": "\n\n"}))
    return out


def test_vllm_pooling_scores_like_hf(tiny_prm):
    steps = ["Multiply 13 by 3: 13 * 3 = 39.", "Add 60: 39 + 60 = 99.", "The answer is \\boxed{99}."]
    paths = [steps, steps[:2], ["The answer is \\boxed{1}."]]
    hf = asyncio.run(HFRewardModel(str(tiny_prm), device="cpu").score("Start with 13.", paths))
    prm = VLLMRewardModel(str(tiny_prm), gpu_memory_utilization=0.1)
    try:
        got = asyncio.run(prm.score("Start with 13.", paths))
    finally:
        prm.close()
    for a, b in zip(got, hf, strict=True):
        assert a == pytest.approx(b, abs=1e-4)
