#!/usr/bin/env bash
# Three rounds of bench/run.sh's training rows (ours and PyTorch eager back to back), fixed and
# natural shapes, into train-{fixed,natural}-{1,2,3}, from the repository root:
#   results/cpu/intel-2026-12-06/run-train.sh
# Run at 52e9f02: the training step with the layer norm statistics summed in 16 lanes (745879a),
# which had not been measured against the reference since.
set -euo pipefail
out=results/cpu/intel-2026-12-06
for r in 1 2 3; do
  bench/run.sh --threads 2 --workloads train-multitask,train-ner --out "$out/train-fixed-$r"
  bench/run.sh --threads 2 --shapes natural --workloads train-multitask,train-ner --out "$out/train-natural-$r"
done
