"""The tiny model: Qwen2-compatible tokenizer that survives a reload, special tokens, cache."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from cotgen import tiny_model as tiny
from cotgen.tiny_model import CHATML_TOKENS, OPENLONGCOT_TOKENS, build_tiny_model, tiny_model_path

TEXTS = [
    "Hello world! The answer is \\boxed{42}.",
    "  leading spaces\n\n\ttab 12345 café ñ 日本語 emoji 😀",
    "<start_of_father_id>-1<end_of_father_id><start_of_thought> x=3<end_of_thought><positive_rating>",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "'s 're I'M don't WE'LL",
    "a\r\nb  \n  c\n\n\n   d",
    "$\\frac{3}{4} = 0.75$, 1,000 apples; 50% of 20 is 10. #### 18",
    "Ünïcödé NFC: é vs é",  # the second is e + combining accent: NFC makes them equal
    "",
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_reload_gives_the_trained_ids(tokenizer):
    trained = tiny._train_tokenizer()
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids == trained.encode(text).ids, text
        assert tokenizer.decode(ids) == trained.decode(ids, skip_special_tokens=False)


def test_special_tokens_are_single_tokens(tokenizer):
    for token in CHATML_TOKENS + OPENLONGCOT_TOKENS:
        ids = tokenizer.encode(token, add_special_tokens=False)
        assert len(ids) == 1 and tokenizer.convert_ids_to_tokens(ids[0]) == token, token
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 0
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    # Structural tokens glued to text still split out.
    ids = tokenizer.encode("<start_of_thought>step<end_of_thought>", add_special_tokens=False)
    assert ids[0] == tokenizer.convert_tokens_to_ids("<start_of_thought>")
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<end_of_thought>")


def test_chat_template(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_model_shape_and_eos(tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    params = sum(p.numel() for p in model.parameters())
    assert 200_000 < params < 500_000
    # vLLM's CPU attention takes head_dim 64, not the 16 of the first recipe.
    assert model.config.hidden_size // model.config.num_attention_heads == 64
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_build_is_deterministic(tmp_path, tiny_model_dir):
    again = build_tiny_model(tmp_path / "again")
    a = load_file(str(tiny_model_dir / "model.safetensors"))
    b = load_file(str(again / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
    assert (tiny_model_dir / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()


def test_user_cache_builds_once(tmp_path, monkeypatch):
    monkeypatch.setenv("COTGEN_CACHE", str(tmp_path / "cache"))
    calls = []
    real = tiny.build_tiny_model
    monkeypatch.setattr(tiny, "build_tiny_model", lambda out: calls.append(out) or real(out))
    first = tiny_model_path()
    second = tiny_model_path()
    assert first == second == tmp_path / "cache" / f"tiny-{tiny.TINY_VERSION}"
    assert len(calls) == 1
    assert (first / "config.json").is_file()
    # Built in a temporary sibling and renamed: nothing else is left in the cache.
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.name]


def test_failed_build_leaves_no_half_model(tmp_path, monkeypatch):
    monkeypatch.setenv("COTGEN_CACHE", str(tmp_path / "cache"))

    def broken(out):
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiny, "build_tiny_model", broken)
    with pytest.raises(RuntimeError):
        tiny_model_path()
    assert list((tmp_path / "cache").iterdir()) == []


def test_cli_builds_the_tiny_model(cli, tmp_path):
    r = cli("model", "tiny", "--out", tmp_path / "m")
    assert r.code == 0, r.err
    assert r.out.strip() == str(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert "tiny model ready" in r.err
