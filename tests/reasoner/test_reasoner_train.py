"""Seeded training is bit-identical run to run (same machine, same thread count)."""

from __future__ import annotations

import json

import pytest

from cotgen.reasoner.train import MARKER, TrainConfig, lr_at, train

SMALL = dict(steps=3, batch_size=4, tokenizer_texts=400, per_seed=3, train_seeds=40, warmup=2, threads=1)


@pytest.mark.slow
def test_a_few_seeded_steps_are_bit_identical(tmp_path):
    cfg = TrainConfig(**SMALL)
    logs: list[str] = []
    train(tmp_path / "a", cfg, log=logs.append)
    train(tmp_path / "b", cfg, log=logs.append)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = TrainConfig(**{**SMALL, "seed": 1})
    train(tmp_path / "c", other, log=logs.append)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() != (tmp_path / "c" / "model.safetensors").read_bytes()
    record = json.loads((tmp_path / "a" / MARKER).read_text())
    assert record["config"]["seed"] == 0 and record["steps_done"] == 3


def test_the_model_has_the_issue_shape(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    train(tmp_path, TrainConfig(**{**SMALL, "steps": 1}), log=lambda _: None)
    c = AutoConfig.from_pretrained(tmp_path)
    assert (c.hidden_size, c.num_hidden_layers, c.intermediate_size) == (128, 4, 512)
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.tie_word_embeddings) == (2, 1, 64, True)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert len(tok) <= 512
    for text in ("Yes", "No", "<|im_end|>"):
        assert len(tok.encode(text, add_special_tokens=False)) == 1
    assert tok.encode("1234", add_special_tokens=False) == [tok.convert_tokens_to_ids(d) for d in "1234"]


def test_schedule_and_settings():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, lr_floor=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(99, cfg) == pytest.approx(1e-4, rel=0.01)
    with pytest.raises(ValueError, match="held out"):
        TrainConfig(train_seeds=1001)


def test_cli_refuses_bad_settings(cli, tmp_path):
    r = cli("model", "train-tiny-reasoner", "--out", tmp_path, "--steps", "0")
    assert r.code == 2 and "steps must be >= 1" in r.err
    r = cli("model", "train-tiny-reasoner", "--out", tmp_path, "--mix", "solve=1,poetry=0")
    assert r.code == 2 and "mix must give shares" in r.err and "Traceback" not in r.err
    r = cli("model", "train-tiny-reasoner", "--out", tmp_path, "--mix", "solve")
    assert r.code == 2 and "KIND=SHARE" in r.err


@pytest.mark.slow
def test_a_second_phase_continues_from_a_folder_and_is_bit_identical(tmp_path):
    train(tmp_path / "a", TrainConfig(**SMALL), log=lambda _: None)
    # The drill mixes train too (a mix of drills only, so both steps are drill batches).
    drills = (("drill", 0.4), ("times", 0.3), ("sums", 0.3))
    second = TrainConfig(**{**SMALL, "steps": 2, "seed": 2, "init_from": str(tmp_path / "a"), "mix": drills})
    train(tmp_path / "b", second, log=lambda _: None)
    train(tmp_path / "c", second, log=lambda _: None)
    weights = [(tmp_path / x / "model.safetensors").read_bytes() for x in "abc"]
    assert weights[1] == weights[2] != weights[0]
    assert (tmp_path / "b" / "tokenizer.json").read_bytes() == (tmp_path / "a" / "tokenizer.json").read_bytes()
    record = json.loads((tmp_path / "b" / MARKER).read_text())
    assert record["config"]["init_from"] == "a" and record["continued_from"]["steps_done"] == 3
    assert record["phase"] == 2 and record["continued_from"]["phase"] == 1
    assert record["config"]["mix"] == [list(x) for x in drills]
