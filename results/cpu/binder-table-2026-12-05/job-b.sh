#!/bin/bash
# Catalog (first 2000 training titles), then zero-shot COLOR/MATERIAL model, then NCBI; one thread.
cd /work/main
export RAYON_NUM_THREADS=1
T=/tmp/trainer-meas
$T compare --types data/binder/catalog_types.json --variants baseline,binder+epochs:3 --seeds 3 \
  --limit-train 2000 --eval-limit 1000 --out runs/binder-table/catalog
$T train --task binder --types runs/binder-table/types-no-color.json --hold-out-types COLOR \
  --limit-train 2000 --epochs 3 --out runs/binder-table/catalog-no-color
D=../shared/data/ncbi_disease
$T compare --train $D/train.tsv --dev $D/devel.tsv --test $D/test.tsv --types data/binder/ncbi_disease_types.json \
  --variants baseline,binder+epochs:3 --seeds 3 --out runs/binder-table/ncbi
