#!/usr/bin/env bash
# Seeds 2 and 3 of the published SpERT code (lavis-nlp/spert) on all-MiniLM-L6-v2, CoNLL04, as
# seed 1 in ../relations-conll04-2026-12-05/spert-published-seed-1 (same script and recipe).
# Intel Xeon VM (2 vCPUs), 2026-12-06: the two seeds side by side, one thread each, with builds and
# a test run of other work beside them part of the time.
set -euo pipefail
mkdir -p /tmp/spert && git -C /work/.mirror/lavis-nlp+spert/repo archive HEAD | tar -x -C /tmp/spert
for s in 2 3; do
  bench/reference/spert_published.sh /tmp/spert --seed "$s" --threads 1 > "/tmp/spert-seed$s.log" 2>&1 &
done
wait
for s in 2 3; do
  out="results/cpu/relations-conll04-2026-12-06/spert-published-seed-$s"
  mkdir -p "$out" && cp "runs/spert-published/seed-$s/"{eval.log,test_scores.json} "$out/"
done
