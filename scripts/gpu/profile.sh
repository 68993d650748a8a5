#!/usr/bin/env bash
# Where a CUDA training step's time goes (device machine, after `. scripts/gpu/setup.sh`):
# GPU utilisation sampled by nvidia-smi and the process's CPU time over 20 plain steps (a GPU that
# idles while one CPU core is busy means launch overhead), then Nsight Compute's duration of every
# kernel of three steps (one warm-up), one row per launch, for bench/profile/kernels.py.
# Usage: scripts/gpu/profile.sh OUTDIR [extra `trainer bench` arguments]
set -uo pipefail
out="${1:?output directory}"; shift
mkdir -p "$out"
bench=("$TRAINER" bench --device cuda --model "$BASE" --in-process --shapes fixed --batch-size 32
  --title-tokens 64 --description-tokens 128
  --catalog "$MULTITAG_DATA/myntra_products/myntra_products_catalog.csv" "$@")
for workload in train-multitask train-ner; do
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 50 > "$out/util-$workload.csv" &
  smi=$!
  TIMEFORMAT="$workload: real %R s, user %U s, sys %S s"
  time "${bench[@]}" --workloads "$workload" --steps 20 --warmup-steps 3 2>&1 | grep -v "^\s*$" | tail -3
  kill "$smi"
  awk -v w="$workload" '{s+=$1; n++} END {printf "%s: mean GPU utilisation %.0f%% over %d samples\n", w, s/n, n}' "$out/util-$workload.csv"
done
timeout 240 ncu --metrics gpu__time_duration.sum --csv "${bench[@]}" --workloads train-multitask \
  --steps 2 --warmup-steps 1 > "$out/ncu-multitask.csv" 2> "$out/ncu.err"
echo "ncu rc $?: $(grep -c gpu__time_duration "$out/ncu-multitask.csv") kernels"
xz -9 "$out/ncu-multitask.csv"
