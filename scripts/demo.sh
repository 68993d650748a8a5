#!/usr/bin/env bash
# The main job: fetch the base model, label the catalog, train a tagger that also matches titles to
# descriptions if none is cached, evaluate it on the held-out split and the gold set, tag a few
# titles, export the quantized model for the browser app, build the app and serve it with
# `trunk serve`.
# The recipe: NER (read from one transformer layer of the tagger's own) + 0.1 x in-batch InfoNCE
# from titles to their descriptions (cut at 32 sub-words) + distillation towards the base
# encoder's embeddings (weight 2), one epoch over the whole training split, batch 32, lr 1e-4.
# About 5 minutes on 2 CPU cores (docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
model="${MULTITAG_DEMO_MODEL:-runs/demo}"
cargo build --release -p multitag-trainer
trainer="${CARGO_TARGET_DIR:-target}/release/trainer"
$trainer fetch-model
$trainer label --out runs/labeled.jsonl
if [ ! -f "$model/model.safetensors" ]; then
  echo "training the demo model: one epoch over the training split, tags (with a layer of their own)"
  echo "+ InfoNCE + distillation"
  echo "(about 4 minutes on 2 CPU cores; less with more cores) ..."
  $trainer train --out "$model" --objective infonce --lambda 0.1 --distill 2 --tagging-layers 1 \
    --epochs 1 --batch-size 32 --lr 1e-4 --description-tokens 32
  # Only the weights are needed from here on; the resume checkpoint is 270 MB.
  rm -rf "$model/checkpoint"
else
  echo "using the cached model in $model"
fi
$trainer eval --model "$model" --json "$model/eval.json"
printf '%s\n' \
  "Roadster Men Navy Blue Slim Fit Checked Casual Shirt" \
  "DKNY Unisex Black & Grey Printed Medium Trolley Bag" \
  "EthnoVogue Women Beige & Grey Made to Measure Kurta Set with Jacket" \
  | $trainer tag --model "$model"

# The browser app: export the model for the page (q4k GGUF + tokenizer + examples), build it and
# serve it at http://127.0.0.1:8080 (Ctrl-C stops). MULTITAG_DEMO_SERVE=0 builds without serving.
$trainer export --model "$model" --quant q4k --out public/model
# The Relations view reads a relation extraction model from public/relations: exported here when
# one has been trained (MULTITAG_DEMO_RELATIONS, default runs/conll04, as `trainer train --task
# relations --data ../shared/data/conll04 --out runs/conll04` writes it); without one the view
# says how to make it.
relations="${MULTITAG_DEMO_RELATIONS:-runs/conll04}"
if [ -f "$relations/model.safetensors" ]; then
  $trainer export --model "$relations" --quant q4k --out public/relations
fi
scripts/install-web-tools.sh
export TRUNK_SKIP_VERSION_CHECK=true
if [ "${MULTITAG_DEMO_SERVE:-1}" != 0 ]; then
  echo "building and serving the browser app at http://127.0.0.1:8080 (trunk serve; Ctrl-C stops)"
  exec trunk serve --release
fi
trunk build --release
