#!/usr/bin/env bash
# The speed tables of docs/results.md's "Second CPU" section, measured back to back on a quiet
# machine (Intel Xeon, AVX-512 VNNI and AMX, 2 vCPUs), from the repository root:
#   results/cpu/intel-2026-12-05/run.sh
# runs/demo is scripts/demo.sh's model; runs/export-q8 is `trainer export --model runs/demo --quant
# q8_0 --out runs/export-q8`. Tagging gives both sides runs/demo's 7 layers.
set -euo pipefail
out=results/cpu/intel-2026-12-05
for r in 1 2 3; do
  bench/run.sh --threads 2 --workloads train-multitask,train-ner --out "$out/train-fixed-$r"
  bench/run.sh --threads 2 --shapes natural --workloads train-multitask,train-ner --out "$out/train-natural-$r"
  bench/run.sh --threads 2 --model runs/demo --tag-model runs/export-q8 --matmul int8 \
    --workloads tag1,tag32 --out "$out/tag-$r"
done
bench/browser.sh --rounds 3 --out "$out/browser"
