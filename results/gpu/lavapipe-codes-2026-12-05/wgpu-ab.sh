#!/bin/bash
# A/B: quantized matrices as codes vs dequantized to f32 at upload, lavapipe, 32 titles per batch.
cd "$(dirname "$0")/../../.."
for round in 1 2; do
  for model in runs/export-q8 public/model; do
    for w in codes f32; do
      echo "== round $round $model $w"
      MULTITAG_GPU_WEIGHTS=$w target/release/trainer bench --model runs/demo --tag-model $model \
        --workloads tag32 --tag-titles 32 --repetitions 2 --in-process --backend wgpu \
        --catalog ../shared/data/myntra_products/myntra_products_catalog.csv 2>&1 | grep -E "tag|encoder on|MB"
    done
  done
done
