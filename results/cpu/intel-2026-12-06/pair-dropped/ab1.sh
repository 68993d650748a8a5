#!/bin/bash
# Many alternating rounds of batch-1 tagging (2 threads) of two builds, the ADE lanes paused.
cd "$(dirname "$0")/../../../.."
P=$(pgrep -f "trainer-s32 compare" | tr '\n' ' ')
t0=$(date +%s); kill -STOP $P
for r in $(seq 1 ${ROUNDS:-8}); do
  line="$r"
  for b in "$@"; do
    v=$(RAYON_NUM_THREADS=${THREADS:-2} $b bench --model runs/demo --tag-model runs/export-q8 --matmul int8 --workloads ${WORKLOAD:-tag1} --in-process --repetitions 1 --catalog ../shared/data/myntra_products/myntra_products_catalog.csv 2>&1 | grep -E "tag_batch_[0-9]+:" | awk '{print $2}')
    line="$line $v"
  done
  echo "$line"
done
kill -CONT $P; t1=$(date +%s)
echo "paused $((t1-t0)) s (A/B ${WORKLOAD:-tag1}: $*)" >> results/cpu/relations-ade0-2026-12-05/pauses.txt
