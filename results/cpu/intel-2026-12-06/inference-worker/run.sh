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
bench/browser.sh --titles 500 --rounds "${ROUNDS:-3}" \
  --base "${BASE_DIST:?BASE_DIST: the dist/ of the build before}" \
  --out results/cpu/intel-2026-12-06/inference-worker
