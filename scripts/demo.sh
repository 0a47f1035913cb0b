#!/usr/bin/env bash
# The main job end to end on built-in defaults: search trees with the tiny model on the CPU,
# export them (OpenLongCoT, Marco-o1, PRM), validate every export, and draw one tree.
#
# The tiny model has random weights: its text is noise and its answers are wrong, so the
# Marco-o1 export (best *correct* path) usually refuses every tree, saying so. With a real
# model (see README: --model qwen2.5-7b --engine vllm) the same commands give full data.
set -euo pipefail
out=${DEMO_OUT:-demo-out}
rm -rf "$out"
run() { printf '\n$ %s\n' "$*" >&2; "$@"; }
run cotgen synthesize --model tiny --problems builtin:arith --limit 16 --out "$out/run"
run cotgen export "$out/run" --format openlongcot --out "$out/openlongcot"
run cotgen export "$out/run" --format marco --out "$out/marco"
run cotgen export "$out/run" --format prm --paths all --out "$out/prm"
shopt -s nullglob
run cotgen validate "$out/openlongcot" "$out/prm" "$out"/marco/*.json
run cotgen stats "$out/run"
run cotgen inspect "$out/run" --row 0 --width 60
