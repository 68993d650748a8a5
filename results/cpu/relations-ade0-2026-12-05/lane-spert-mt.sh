#!/bin/bash
# ADE fold 0 (SpERT's split 0: 3,845 training, 427 test sentences): the published recipe, 20 epochs, one thread.
cd /work/main
export RAYON_NUM_THREADS=1
/tmp/trainer-s32 compare --task relations --train ../shared/data/ade/ade_split_0_train.json \
  --test ../shared/data/ade/ade_split_0_test.json --types ../shared/data/ade/ade_types.json \
  --first-seed ${1:-1} --seeds ${2:-1} --variants spert-mt --out runs/rel-ade0-spert-mt
