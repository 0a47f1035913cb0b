#!/usr/bin/env bash
# The main job end to end on built-in defaults: search trees with tiny-reasoner (a ~1M-parameter
# model trained here on builtin:arith, shipped in the package) on the CPU, export them
# (OpenLongCoT, Marco-o1, SFT, PRM), validate every export, compare the search with greedy
# decoding, and draw one tree that has a correct answer.
#
# The problems are seed 1000 of builtin:arith: tiny-reasoner never trained on seeds >= 1000.
set -euo pipefail
out=${DEMO_OUT:-demo-out}
rm -rf "$out"
run() { printf '\n$ %s\n' "$*" >&2; "$@"; }
run cotgen synthesize --model tiny-reasoner --problems builtin:arith --problem-seed 1000 --limit 16 \
  --out "$out/run"
run cotgen export "$out/run" --format openlongcot --out "$out/openlongcot"
run cotgen export "$out/run" --format marco --out "$out/marco"
run cotgen export "$out/run" --format sft --out "$out/sft"
run cotgen export "$out/run" --format prm --paths all --out "$out/prm"
shopt -s nullglob
run cotgen validate "$out/openlongcot" "$out/prm" "$out/sft" "$out/marco"
run cotgen stats "$out/run"
# Greedy accuracy vs the share of trees with a correct leaf (stderr); the id of a solved tree.
printf '\n$ python -m cotgen.reasoner.demo %s\n' "$out/run" >&2
solved=$(python -m cotgen.reasoner.demo "$out/run")
run cotgen inspect "$out/run" --id "$solved" --width 60
