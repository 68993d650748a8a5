#!/usr/bin/env bash
# The CUDA training kernels (crates/model/src/kernels/cuda, off unless MULTITAG_CUDA_KERNELS=on) on a GPU.
# Device machine, after `. scripts/gpu/setup.sh`:
#   tests  their tests against the CPU kernels (the test binaries from scripts/gpu/pack.sh);
#   bench  `trainer bench` training speed with the kernels off, then on, back to back;
#   train  one epoch of NER + triplet training each way, for the loss and F1.
# Usage: scripts/gpu/kernels.sh OUTDIR [tests] [bench] [train]   (default: all three)
# All of .gpu/ is more than one device call carries (64 MiB): carry .gpu/tests for `tests`, and
# .gpu/trainer.xz, .gpu/model and .gpu/catalog.csv.xz for `bench` and `train`.
set -uo pipefail
out="${1:?output directory}"; shift
parts="${*:-tests bench train}"
mkdir -p "$out"
catalog="$MULTITAG_DATA/myntra_products/myntra_products_catalog.csv"
for part in $parts; do
  case "$part" in
    tests)
      for t in /tmp/mt/tests/*; do
        log="$out/tests-$(basename "$t").log"
        MULTITAG_CUDA_KERNELS=on "$t" cuda --test-threads 1 > "$log" 2>&1
        echo "$(basename "$t"): exit $?"; grep -E "^test |test result" "$log"
      done ;;
    bench)
      for kernels in off on; do
        MULTITAG_CUDA_KERNELS=$kernels "$TRAINER" bench --device cuda --model "$BASE" \
          --catalog "$catalog" --batch-size 32 --title-tokens 64 --description-tokens 128 \
          --workloads train-multitask,train-ner --json "$out/bench-kernels-$kernels.json" 2>&1 |
          grep -E "median|per step"
      done ;;
    train)
      for kernels in off on; do
        MULTITAG_CUDA_KERNELS=$kernels timeout 240 "$TRAINER" train --device cuda --model "$BASE" \
          --catalog "$catalog" --objective triplet --lambda 1 --epochs 1 --seed 1 \
          --out "$out/train-kernels-$kernels" > "$out/train-kernels-$kernels.log" 2>&1
        echo "kernels $kernels: exit $?"; tail -3 "$out/train-kernels-$kernels.log"
      done ;;
    *) echo "kernels.sh: unknown part $part" >&2; exit 2 ;;
  esac
done
