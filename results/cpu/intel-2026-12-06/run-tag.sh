#!/usr/bin/env bash
# Three rounds of bench/run.sh's tagging rows (ours and the references back to back) into
# tag-NAME-{1,2,3}, from the repository root:
#   results/cpu/intel-2026-12-06/run-tag.sh NAME
# `inference` was run after attention's AVX-512 weighted sums and the residual layer norm kernel
# in inference.
set -euo pipefail
name="${1:?usage: run-tag.sh NAME}"
out=results/cpu/intel-2026-12-06
for r in 1 2 3; do
  bench/run.sh --threads 2 --model runs/demo --tag-model runs/export-q8 --matmul int8 \
    --workloads tag1,tag32 --out "$out/tag-$name-$r"
done
