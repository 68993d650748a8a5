#!/bin/bash
# The app's worker after the inference changes of e4d81ce (attention's context sums in registers,
# the residual layer norm kernel with vectorized statistics) against the build before them and the
# transformers.js reference, back to back in headless Chromium: per round and per N in 1 2: ours
# (dist/ of e4d81ce), the earlier build (MULTITAG_DIST=$BASE_DIST, `trunk build --release` at
# 7d503dc), the reference with N wasm threads, ours again. The first 500 catalog titles, batch 1
# (one title in flight) and batches of 32; public/model (runs/demo's q4k export) and its q8 ONNX
# for the reference. Both builds start their relaxed-SIMD worker.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
out=results/cpu/intel-2026-12-06/inference-worker
bench=target/release/browser-bench
common=(--titles 500 --batches 1,32)
base_dist="${BASE_DIST:?BASE_DIST: the dist/ of the build before}"
for round in ${ROUNDS:-1 2 3}; do
  for n in 1 2; do
    for side in ours-a base reference ours-b; do
      echo "== round $round, $n in parallel: $side" >&2
      case $side in
        reference) "$bench" "${common[@]}" --reference .cache/bench-browser/model --threads $n --out $out/r$round-p$n-$side.json >/dev/null ;;
        base) MULTITAG_DIST="$base_dist" "$bench" "${common[@]}" --workers $n --out $out/r$round-p$n-$side.json >/dev/null ;;
        *) "$bench" "${common[@]}" --workers $n --out $out/r$round-p$n-$side.json >/dev/null ;;
      esac
    done
  done
done
python3 bench/browser/table.py $out > $out/table.md
python3 bench/browser/compare_builds.py $out base "after / before" > $out/after-vs-before.md
