#!/usr/bin/env bash
# Tagging after the AMX kernel, the GELU fused into the int8 product, the stacked query/key/value
# projections and the AVX-512 attention scores: three rounds of the tagging rows of run.sh, from the repository root.
set -euo pipefail
out=results/cpu/intel-2026-12-05
for r in 1 2 3; do
  bench/run.sh --threads 2 --model runs/demo --tag-model runs/export-q8 --matmul int8 \
    --workloads tag1,tag32 --out "$out/tag-final-$r"
done
