"""The tiny random-weight Qwen2 model cotgen builds locally for demos and tests."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from cotgen.errors import RunError, UsageError, first_line
from cotgen.formats.openlongcot import TOKENS

# Bump when the recipe below changes: the user cache keys on it, so an old build is
# never mistaken for the new one.
TINY_VERSION = "2"

OPENLONGCOT_TOKENS = list(TOKENS)  # the format's own list: a tag's token id depends on its place
# <|endoftext|> first so it gets id 0, as in Qwen2 (it is the pad and unk token).
CHATML_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

VOCAB_SIZE = 1024  # BPE vocabulary incl. special tokens; small keeps the embedding ~50k params
# Qwen2 shape scaled down to ~370k parameters: fast on one CPU core, still a real
# GQA transformer (2 query heads share 1 key/value head) with rotary positions. Head
# dimension 64 (hidden 128 / 2 heads): vLLM's CPU attention refuses smaller ones
# ("Unsupported CPU attention configuration: head_dim=16"), and one model serves the hf,
# vllm and openai engines.
MODEL_SHAPE = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=4096,
    rope_theta=10000.0,
    tie_word_embeddings=True,
    # Wider than the usual 0.02 so the next-token distribution is peaked, not flat:
    # greedy decoding then has clear winners, which keeps batched-vs-alone comparisons stable.
    initializer_range=0.15,
)
WEIGHT_SEED = 1234  # fixed: every build of the same TINY_VERSION has the same weights


def _corpus() -> list[str]:
    """A small built-in corpus of math-flavoured text, deterministic."""
    words = (
        "The answer is Let us compute the total number of apples each step so first then "
        "therefore because we add subtract multiply divide sum product equals remainder "
        "half twice three times fraction percent of minus plus Solve for x equation value "
        "check again wait maybe I made a mistake rethink from scratch problem solution "
        "final answer Step She He They has had bought sold gives gets left over more less "
        "than how many much cost dollars hours minutes per day week each costs rate speed"
    ).split()
    lines = []
    for i in range(400):
        a, b = (i * 37) % 97 + 1, (i * 53) % 89 + 2
        w = words[i % len(words)], words[(i * 7) % len(words)], words[(i * 13) % len(words)]
        lines.append(f"{w[0]} {a} {w[1]} {b}, {w[2]} {a} + {b} = {a + b}.")
        lines.append(f"So {a} * {b} = {a * b} and {a * b} / {b} = {a}. The answer is \\boxed{{{a + b}}}.")
        lines.append(f"#### {a * b - b}\n\n$\\frac{{{a}}}{{{b}}}$ is {a / b:.3f}; {a}% of {b * 100} is {a * b}.")
    lines.append(" ".join(words))
    lines.append("\\boxed{} \\fbox{} \\frac{}{} \\sqrt{} x^2 ( ) [ ] { } < > = + - * / ! ? : ; ' \"")
    return lines


def train_qwen2_bpe(texts, vocab_size: int, special_tokens: list[str]):
    """A byte-level BPE trained with exactly Qwen2's normalizer and pre-tokenizer (digits stay
    single tokens); also what tiny-reasoner's tokenizer is trained with.

    transformers 5 rebuilds a qwen2 tokenizer from its class on load, keeping only vocab
    and merges; any other pre-tokenizer would give different ids after a reload.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def qwen2_tokenizer(trained, extra_special_tokens: list[str], max_length: int):
    """A BPE from train_qwen2_bpe as a transformers Qwen2Tokenizer with the ChatML template
    (the tiny model's and tiny-reasoner's): <|im_end|> ends a turn, <|endoftext|> pads."""
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    model_json = json.loads(trained.to_str())["model"]
    return Qwen2Tokenizer(
        vocab=model_json["vocab"],
        merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_json["merges"]],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>", *extra_special_tokens],
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_length,
    )


def qwen2_model(vocab: dict[str, int], shape: dict):
    """A Qwen2ForCausalLM of `shape` over `vocab` with ChatML's stop tokens and greedy
    decoding. Its random weights come from torch's global generator: the caller seeds it."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(vocab),
        bos_token_id=None,
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<|endoftext|>"],
        **shape,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[vocab["<|im_end|>"], vocab["<|endoftext|>"]],
        pad_token_id=vocab["<|endoftext|>"],
        do_sample=False,
    )
    return model


def _train_tokenizer():
    return train_qwen2_bpe(_corpus(), VOCAB_SIZE, CHATML_TOKENS + OPENLONGCOT_TOKENS)


def build_tiny_model(out: Path) -> Path:
    """Write the tiny model (weights, config, tokenizer, chat template) into folder `out`."""
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a 0.4 MB write needs no progress bar on stderr
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trained = _train_tokenizer()
    tokenizer = qwen2_tokenizer(trained, OPENLONGCOT_TOKENS, MODEL_SHAPE["max_position_embeddings"])
    tokenizer.save_pretrained(out)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHT_SEED)
        model = qwen2_model(trained.get_vocab(), MODEL_SHAPE)
    model.save_pretrained(out)
    (out / "COTGEN_TINY").write_text(
        f"cotgen tiny model, recipe version {TINY_VERSION}: random weights, for demos and tests only\n"
    )
    return out


def cache_dir() -> Path:
    """Where cotgen keeps what it builds: $COTGEN_CACHE, else $XDG_CACHE_HOME/cotgen or ~/.cache/cotgen."""
    if os.environ.get("COTGEN_CACHE"):
        return Path(os.environ["COTGEN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cotgen"


def tiny_model_path() -> Path:
    """The tiny model in the user cache, built on first use (see write_tiny_model)."""
    final = cache_dir() / f"tiny-{TINY_VERSION}"
    if (final / "COTGEN_TINY").is_file():
        return final
    return write_tiny_model(final, hint="set COTGEN_CACHE")


def write_tiny_model(final: Path, hint: str = "give another --out") -> Path:
    """Build the tiny model into folder `final`, all or nothing.

    Built in a temporary sibling folder and renamed into place, so a crash, a full disk or
    two processes racing never leave a half-written model under the final name. `final`
    may be missing, an empty folder or an earlier tiny model; anything else is refused.
    """
    from safetensors import SafetensorError

    final = Path(final)
    if final.exists() and not final.is_dir():
        raise UsageError(f"--out {final}: exists and is a file, expected a folder for the model")
    if final.is_dir() and any(final.iterdir()) and not (final / "COTGEN_TINY").is_file():
        raise UsageError(f"--out {final}: a folder that is not empty and holds no tiny model; give a new or empty folder")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as exc:
        raise RunError(f"cannot build the tiny model in {final.parent}: {exc.strerror} ({hint})") from None
    try:
        try:
            build_tiny_model(tmp)
        except OSError as exc:
            raise RunError(f"cannot write the tiny model to {final}: {exc.strerror} ({hint}); nothing was left there") from None
        except SafetensorError as exc:
            # safetensors reports a full disk as its own error ("IoError(Os { code: 28 ...})").
            raise RunError(f"cannot write the tiny model to {final}: {first_line(exc)} ({hint}); "
                           "nothing was left there") from None
        try:
            if final.is_dir() and (final / "COTGEN_TINY").is_file():
                shutil.rmtree(final)  # an earlier build: the same recipe, replaced whole
            tmp.rename(final)  # onto a missing or empty folder: atomic
        except OSError:
            # Another process finished first (the target exists and is not empty): use its build.
            if not (final / "COTGEN_TINY").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
