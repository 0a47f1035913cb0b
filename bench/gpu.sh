#!/usr/bin/env bash
# GPU benchmark of the hf engine, for a machine with a CUDA GPU, torch and transformers (no
# vLLM, no network needed): a random-weight model of Qwen2.5-7B's shape, built from its config,
# plain batched generate and an MCTS search at batch 64 and 256 in bf16. Writes tokens/s as JSON
# to $OUT/gpu_bench.json (the device tool's output folder), else bench/gpu_results.json.
#   bash bench/gpu.sh            # on the GPU machine, from the repository root
#   bash bench/gpu.sh --dry      # a scaled-down shape on the CPU: checks the script in seconds
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
PY="${PYTHON:-python3}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && ! "$PY" -c "import torch, transformers" 2>/dev/null; then
  PY=.venv/bin/python
fi
# cotgen's own dependencies, when the machine's Python lacks them and has no network: from a
# wheelhouse made elsewhere (pip wheel -w bench/gpu-wheels typer rich pyarrow datasets
# 'math-verify[antlr4_13_2]' rensa) and brought along.
if ! "$PY" -c "import typer, rich, pyarrow, math_verify" 2>/dev/null && [ -d bench/gpu-wheels ]; then
  "$PY" -m pip install -q --no-index --find-links bench/gpu-wheels typer rich pyarrow datasets 'math-verify[antlr4_13_2]' rensa
fi
if ! "$PY" -c "import typer, rich, pyarrow, math_verify" 2>/dev/null; then
  echo "gpu.sh: $PY lacks cotgen's dependencies (typer rich pyarrow math-verify); see the comment above" >&2
  exit 1
fi
OUT_FILE="${OUT:+$OUT/gpu_bench.json}"
OUT_FILE="${OUT_FILE:-bench/gpu_results.json}"
exec "$PY" bench/gpu_bench.py --out "$OUT_FILE" "$@"
