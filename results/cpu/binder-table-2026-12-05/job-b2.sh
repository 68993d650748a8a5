#!/bin/bash
# Catalog and NCBI-disease: token tagger (batch 8) vs BINDER (3 epochs each), seeds 1-3, one thread.
cd /work/main
export RAYON_NUM_THREADS=1
T=/tmp/trainer-meas
$T compare --types data/binder/catalog_types.json --variants baseline,binder+epochs:3 --seeds 3 \
  --limit-train 2000 --eval-limit 1000 --batch-size 8 --out runs/binder-table/catalog-b8
D=../shared/data/ncbi_disease
$T compare --train $D/train.tsv --dev $D/devel.tsv --test $D/test.tsv --types data/binder/ncbi_disease_types.json \
  --variants baseline,binder+epochs:3 --seeds 3 --batch-size 8 --out runs/binder-table/ncbi-b8
