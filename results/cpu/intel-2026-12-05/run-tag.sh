#!/usr/bin/env bash
# Three rounds of run.sh's tagging rows into tag-NAME-{1,2,3}, from the repository root:
#   results/cpu/intel-2026-12-05/run-tag.sh NAME
# `amx` was run after the AMX kernel, the GELU fused into the int8 product and the stacked
# query/key/value projections; `final` after the AVX-512 attention scores too.
set -euo pipefail
name="${1:?usage: run-tag.sh NAME}"
out=results/cpu/intel-2026-12-05
for r in 1 2 3; do
  bench/run.sh --threads 2 --model runs/demo --tag-model runs/export-q8 --matmul int8 \
    --workloads tag1,tag32 --out "$out/tag-$name-$r"
done
