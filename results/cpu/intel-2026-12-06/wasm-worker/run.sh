#!/bin/bash
# The app's worker after 102e0ef (input rows rounded 16 values at a time in WASM, the relaxed
# kernel's sums reduced and stored as vectors) against the build before it and the transformers.js
# reference, back to back in headless Chromium: per round and per N in 1 2: ours (dist/ of
# 102e0ef), the earlier build (MULTITAG_DIST=$BASE_DIST: `trunk build --release` at 3c4b4ca, whose
# model code is 984ee25's, with the same public/model), the reference with N wasm threads, ours
# again. The first 500 catalog titles, batch 1 (one title in flight) and batches of 32;
# public/model (runs/demo's q4k export) and its q8 ONNX for the reference. Both builds start their
# relaxed-SIMD worker.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
out=results/cpu/intel-2026-12-06/wasm-worker
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
