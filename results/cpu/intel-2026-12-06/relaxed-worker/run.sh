#!/bin/bash
# The app's two worker builds and the transformers.js reference, back to back in headless Chromium:
# per round and per N in 1 2: ours with the relaxed-SIMD worker, the SIMD128 worker (?simd=plain),
# the reference with N wasm threads, the relaxed worker again. The first 500 catalog titles, batch 1
# (one title in flight) and batches of 32; the model is public/model (runs/demo's q4k export) and
# its q8 ONNX for the reference. The ADE training lanes are paused (SIGSTOP) while it runs.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
out=results/cpu/intel-2026-12-06/relaxed-worker
bench=target/release/browser-bench
common=(--titles 500 --batches 1,32)
lanes=$(pgrep -f "trainer-s32 compare" || true)
[ -z "$lanes" ] || kill -STOP $lanes
start=$(date +%s)
trap '[ -z "$lanes" ] || kill -CONT $lanes; echo "paused $(( $(date +%s) - start )) s (browser bench: relaxed vs SIMD128 worker vs transformers.js)" >> results/cpu/relations-ade0-2026-12-05/pauses.txt' EXIT
for round in ${ROUNDS:-1 2 3}; do
  for n in 1 2; do
    for side in ours-a plain reference ours-b; do
      echo "== round $round, $n in parallel: $side" >&2
      case $side in
        reference) "$bench" "${common[@]}" --reference .cache/bench-browser/model --threads $n --out $out/r$round-p$n-$side.json >/dev/null ;;
        plain) "$bench" "${common[@]}" --workers $n --simd plain --out $out/r$round-p$n-$side.json >/dev/null ;;
        *) "$bench" "${common[@]}" --workers $n --out $out/r$round-p$n-$side.json >/dev/null ;;
      esac
    done
  done
done
python3 bench/browser/table.py $out > $out/table.md
python3 bench/browser/compare_builds.py $out plain "relaxed / SIMD128" > $out/relaxed-vs-simd128.md
