#!/bin/bash
# CoNLL04: seeds 2-3 of SpERT + IoU targets and SpERT + multi-task loss (the published recipe, 20 epochs), one thread.
cd /work/main
export RAYON_NUM_THREADS=1
/tmp/trainer-s30 compare --task relations --data ../shared/data/conll04 --seeds 3 \
  --variants spert+iou,spert+mtl --out runs/rel-conll04-v3a
