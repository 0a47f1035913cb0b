"""GPU throughput of the hf engine with a random-weight model of Qwen2.5-7B's shape (built from
its config, nothing downloaded): plain batched generate and an MCTS search at batch 64 and 256,
bf16. Writes a JSON of tokens/s. Run through bench/gpu.sh; `--dry` runs a scaled-down shape on
the CPU in seconds, to check the script itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Qwen/Qwen2.5-7B-Instruct's config.json (the shape only; weights are random).
QWEN25_7B = dict(
    vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
    num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
    rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
)
DRY = dict(QWEN25_7B, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
           num_attention_heads=2, num_key_value_heads=1, vocab_size=4096)
STEP_TOKENS = 32  # max_step_tokens of the search = max_tokens of plain generate


def build_engine(shape: dict, batch: int, device: str, dtype: str):
    """An HFEngine whose model is a random-weight Qwen2 of `shape`, with the tiny model's
    tokenizer (ids beyond its vocabulary decode to nothing: text is noise, speed is real)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from cotgen.engines.config import EngineConfig
    from cotgen.engines.hf import HFEngine
    from cotgen.models import resolve_model
    from cotgen.tiny_model import build_tiny_model

    tiny = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    engine = HFEngine(resolve_model(str(tiny)),
                      EngineConfig(model=str(tiny), device=device, dtype=dtype, max_batch=batch))
    config = Qwen2Config(**shape, eos_token_id=engine.model.config.eos_token_id,
                         pad_token_id=engine.model.config.pad_token_id)
    torch_dtype = getattr(torch, dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with torch.device(engine.device):
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config = engine.model.generation_config
    engine.model = model.eval()
    return engine


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batches", default="64,256")
    parser.add_argument("--dry", action="store_true", help="scaled-down shape on the CPU")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from bench.bench_engine import plain_generate_tokens_per_s
    from bench.bench_search import Recording, _plain_job, _search
    from cotgen.search.config import SearchConfig

    device = "cpu" if args.dry else "cuda"
    dtype = "float32" if args.dry else "bfloat16"
    shape = DRY if args.dry else QWEN25_7B
    figures: dict[str, object] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run)",
        "dtype": dtype, "shape": shape, "torch": torch.__version__,
    }
    for batch in [int(b) for b in args.batches.split(",")]:
        t0 = time.perf_counter()
        engine = build_engine(shape, batch, device, dtype)
        figures[f"build_s_b{batch}"] = time.perf_counter() - t0
        figures[f"plain_tokens_per_s_b{batch}"] = plain_generate_tokens_per_s(
            engine, batch, max_tokens=STEP_TOKENS, repeats=1 if args.dry else 2)
        search = SearchConfig(simulations=4 if args.dry else 8, parallel=4, max_tokens=2 * STEP_TOKENS,
                              max_step_tokens=STEP_TOKENS, enough_correct=0)
        trees = max(1, 2 * batch // search.parallel)
        work = Path(tempfile.mkdtemp())
        recorder = Recording(engine)
        t0 = time.perf_counter()
        summary = _search(recorder, work / "search", trees, trees, search)
        search_tps = summary.generated_tokens / (time.perf_counter() - t0)
        plain_tps = _plain_job(engine, recorder.calls, batch)
        figures[f"search_tokens_per_s_b{batch}"] = search_tps
        figures[f"search_plain_tokens_per_s_b{batch}"] = plain_tps
        figures[f"search_efficiency_b{batch}"] = search_tps / plain_tps if plain_tps else 0.0
        figures[f"trees_b{batch}"] = trees
        asyncio.run(engine.close())
        del engine
        if device == "cuda":
            torch.cuda.empty_cache()
        args.out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")  # partial results survive a timeout
        print(json.dumps({k: v for k, v in figures.items() if k.endswith(f"b{batch}")}), flush=True)
    args.out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
