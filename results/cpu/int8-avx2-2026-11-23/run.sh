#!/bin/bash
# Alternating runs: f32 and the AVX2 int8 kernel with gemm limited to AVX2, then f32 and VNNI with gemm's AVX-512.
cd "$(dirname "$0")/../../.."
export RAYON_NUM_THREADS=2
OUT=results/cpu/int8-avx2-2026-11-23
A=target/noavx512/release/trainer; B=target/release/trainer
for round in 1 2 3; do
  for v in "$A gemm-avx2 f32" "$A gemm-avx2 avx2" "$B gemm-avx512 f32" "$B gemm-avx512 vnni"; do
    set -- $v; bin=$1; build=$2; k=$3
    if [ $k = f32 ]; then m=""; else m="--matmul int8"; fi
    MULTITAG_INT8_KERNEL=$k $bin bench --tag-model runs/export-q8 $m --in-process --workloads tag1,tag32 \
      --json $OUT/$build-$k-run$round.json 2>&1 | grep -E "^\| tag" | sed "s/^/$build $k run$round /"
  done
done
