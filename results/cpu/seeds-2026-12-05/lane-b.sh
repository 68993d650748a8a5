#!/bin/bash
# Seed 3 of BC5CDR and NCBI-disease (token tagger batch 8 vs BINDER, 3 epochs each),
# then CoNLL04 seeds 2-3 of SpERT + enriched pair input; one thread.
cd /work/main
export RAYON_NUM_THREADS=1
T=/tmp/trainer-s30
D=../shared/data/bc5cdr
$T compare --train $D/train.tsv --dev $D/devel.tsv --test $D/test.tsv --types data/binder/bc5cdr_types.json \
  --variants baseline,binder+epochs:3 --seeds 3 --batch-size 8 --out runs/binder-table/bc5cdr-b8
D=../shared/data/ncbi_disease
$T compare --train $D/train.tsv --dev $D/devel.tsv --test $D/test.tsv --types data/binder/ncbi_disease_types.json \
  --variants baseline,binder+epochs:3 --seeds 3 --batch-size 8 --out runs/binder-table/ncbi-b8
$T compare --task relations --data ../shared/data/conll04 --seeds 3 \
  --variants spert+enriched --out runs/rel-conll04-v3b
