"""Train tiny-reasoner: a byte-level BPE of ~512 tokens, then a ~1M-parameter Qwen2 fitted to
every meta action of the search (cotgen.reasoner.data), seeded and bit-identical on one
machine at one thread count."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cotgen.reasoner.data import (
    KINDS,
    MIX,
    TRAIN_SEEDS,
    Example,
    ExampleMaker,
    batch_stream,
    example_stream,
    training_problems,
)
from cotgen.tiny_model import (  # one ChatML for both small models
    CHATML_TOKENS,
    qwen2_model,
    qwen2_tokenizer,
)

# The shape: 2 query heads of dim 64 share one key/value head; tied embeddings.
MODEL_SHAPE = dict(
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=64,
    max_position_embeddings=1024,  # the longest prompt (refine) is ~250 tokens; rollouts add 256
    rope_theta=10000.0,
    tie_word_embeddings=True,
)
MARKER = "COTGEN_TINY_REASONER"  # a file in the model folder: its training settings, as JSON


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (recorded in the model folder)."""

    steps: int = 3000  # optimizer steps
    batch_size: int = 32  # examples per step
    lr: float = 3e-3  # peak AdamW learning rate, cosine decay to lr_floor * lr
    lr_floor: float = 0.05  # the cosine ends at this fraction of lr
    warmup: int = 100  # linear warm-up steps
    weight_decay: float = 0.01  # AdamW decay (embeddings are tied; decay kept small)
    vocab_size: int = 512  # BPE vocabulary, special tokens included
    tokenizer_texts: int = 20000  # examples the BPE is trained on
    per_seed: int = 60  # problems drawn from each training seed
    train_seeds: int = 1000  # the data draws from builtin:arith seeds 0 .. train_seeds-1 (at most 1000)
    max_len: int = 384  # examples longer than this (in tokens) are cut
    seed: int = 0  # seeds the weights, the data stream and the dropout-free training
    # torch threads; results are bit-identical only at the same count. 1: on a shared
    # 2-core machine two threads measured slower and erratic (one of them waits at every op).
    threads: int = 1
    # Continue from a model folder (its weights and tokenizer) instead of starting fresh:
    # a second phase of training, with its own seed so it draws new examples.
    init_from: str | None = None
    # Share of each kind of example among the batches (cotgen.reasoner.data.MIXES: the
    # shipped model's three phases).
    mix: tuple[tuple[str, float], ...] = MIX

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "vocab_size", "tokenizer_texts", "per_seed", "train_seeds", "max_len", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if not 0 < self.lr < 1 or not 0 <= self.lr_floor <= 1:
            raise ValueError("lr must be in (0, 1) and lr_floor in [0, 1]")
        if not self.mix or any(k not in KINDS or w < 0 for k, w in self.mix) or abs(sum(w for _, w in self.mix) - 1) > 1e-6:
            raise ValueError(f"mix must give shares summing to 1 over {sorted(KINDS)}, not {self.mix}")
        if self.train_seeds > TRAIN_SEEDS.stop:
            raise ValueError(f"train_seeds must be <= {TRAIN_SEEDS.stop}: seeds from 1000 up are held out")


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE with exactly Qwen2's normalizer and pre-tokenizer (digits stay single
    tokens), so transformers rebuilds the same tokenizer from vocab and merges on load."""
    from cotgen.tiny_model import train_qwen2_bpe

    return train_qwen2_bpe(texts, vocab_size, CHATML_TOKENS)


def hf_tokenizer(trained):
    """The trained BPE as a transformers Qwen2Tokenizer with the ChatML template."""
    tokenizer = qwen2_tokenizer(trained, [], MODEL_SHAPE["max_position_embeddings"])
    for word in ("Yes", "No"):  # the judge reads P(Yes) vs P(No) from one next-token distribution
        if len(tokenizer.encode(word, add_special_tokens=False)) != 1:
            raise RuntimeError(f"the trained tokenizer splits {word!r}; train it on more judge examples")
    return tokenizer


def build_model(vocab: dict[str, int], seed: int):
    import torch

    torch.manual_seed(seed)  # global, not forked: training's own randomness goes on from here
    return qwen2_model(vocab, MODEL_SHAPE)


def encode_batch(tokenizer, examples: list[Example], max_len: int):
    """(input ids, labels, attention mask): the prompt and the response are encoded apart and
    joined, as the engine encodes a prompt and then appends what it generates; labels are
    -100 everywhere but the response."""
    import torch

    backend = tokenizer._tokenizer
    segments = [e.segments() for e in examples]
    encoded = iter(backend.encode_batch([t for seg in segments for t, _ in seg], add_special_tokens=False))
    rows = []
    for seg in segments:
        ids: list[int] = []
        labels: list[int] = []
        for _, trained in seg:
            piece = next(encoded).ids
            ids += piece
            labels += piece if trained else [-100] * len(piece)
        rows.append((ids[:max_len], labels[:max_len]))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return input_ids, labels, mask


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    out: Path,
    cfg: TrainConfig,
    log: Callable[[str], None] = print,
    save_every: int = 0,
) -> dict:
    """Train tiny-reasoner into folder `out` (weights, tokenizer, chat template, marker).
    `save_every` > 0 also writes out/checkpoint-STEP folders along the way."""
    import torch
    import torch.nn.functional as F

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    problems = training_problems(cfg.per_seed, range(cfg.train_seeds))
    maker = ExampleMaker()
    # The BPE sees a stream of its own seed: the same texts the model trains on, not the same draws.
    sample = example_stream(problems, cfg.seed + 1, maker)
    if cfg.init_from:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(cfg.init_from)
        torch.manual_seed(cfg.seed)
        model = AutoModelForCausalLM.from_pretrained(cfg.init_from, dtype=torch.float32)
    else:
        texts = []
        for _ in range(cfg.tokenizer_texts):
            e = next(sample)
            texts.append(e.prompt + e.response)
        tokenizer = hf_tokenizer(train_tokenizer(texts, cfg.vocab_size))
        model = build_model(tokenizer.get_vocab(), cfg.seed)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{len(problems)} training problems, vocab {len(tokenizer)}, {n_params} parameters, "
        f"setup {time.perf_counter() - t0:.1f}s")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8,
    )
    batches = batch_stream(problems, cfg.seed, cfg.batch_size, maker, cfg.mix)
    model.train()
    losses: list[float] = []
    t_train = time.perf_counter()
    for step in range(cfg.steps):
        batch = next(batches)
        input_ids, labels, mask = encode_batch(tokenizer, batch, cfg.max_len)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        loss = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)).float(), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 25 == 0 or step + 1 == cfg.steps:
            recent = losses[-25:]
            log(f"step {step + 1}/{cfg.steps} loss {sum(recent) / len(recent):.4f} "
                f"lr {lr_at(step, cfg):.2e} {time.perf_counter() - t_train:.0f}s")
        if save_every and (step + 1) % save_every == 0 and step + 1 < cfg.steps:
            _save(out / f"checkpoint-{step + 1}", model, tokenizer, cfg, step + 1, losses, t0)
    return _save(out, model, tokenizer, cfg, cfg.steps, losses, t0)


def _save(folder: Path, model, tokenizer, cfg: TrainConfig, steps: int, losses: list[float], t0: float) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = asdict(cfg)
    earlier = None
    if cfg.init_from:
        config["init_from"] = Path(cfg.init_from).name  # not the machine-local path
        marker = Path(cfg.init_from) / MARKER
        earlier = json.loads(marker.read_text()) if marker.is_file() else None
    record = {
        "model": "tiny-reasoner",
        "phase": 1 + (earlier.get("phase", 1) if earlier else 0),  # a phase with no record counts as the first
        "config": config,
        "continued_from": earlier,
        "steps_done": steps,
        "final_loss": sum(losses[-25:]) / max(1, len(losses[-25:])),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (folder / MARKER).write_text(json.dumps(record, indent=2) + "\n")
    return record
