#!/usr/bin/env bash
# The main job end to end on built-in defaults: search trees with the tiny model on the CPU,
# export them to OpenLongCoT and Marco-o1, validate both, and draw one tree.
set -euo pipefail
out=${DEMO_OUT:-demo-out}
rm -rf "$out"
set -x
cotgen synthesize --model tiny --problems builtin:arith --limit 16 --out "$out/run"
cotgen export "$out/run" --format openlongcot --out "$out/openlongcot"
cotgen export "$out/run" --format marco --out "$out/marco"
cotgen validate "$out"/openlongcot/*.parquet "$out"/marco/*.json
cotgen stats "$out/run"
cotgen inspect "$out/run" --row 0 --width 60
