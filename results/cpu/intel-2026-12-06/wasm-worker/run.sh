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
bench/browser.sh --titles 500 --rounds "${ROUNDS:-3}" \
  --base "${BASE_DIST:?BASE_DIST: the dist/ of the build before}" \
  --out results/cpu/intel-2026-12-06/wasm-worker
