#!/bin/bash
# BC5CDR: token tagger (batch 8, the steps BINDER takes) vs BINDER (3 epochs each), seeds 1-3, one thread.
cd /work/main
export RAYON_NUM_THREADS=1
T=/tmp/trainer-meas
D=../shared/data/bc5cdr
$T compare --train $D/train.tsv --dev $D/devel.tsv --test $D/test.tsv --types data/binder/bc5cdr_types.json \
  --variants baseline,binder+epochs:3 --seeds 3 --batch-size 8 --out runs/binder-table/bc5cdr-b8
