#!/usr/bin/env bash
# The main job: fetch the base model, label the catalog, train a tagger with the triplet loss if
# none is cached, evaluate it on the held-out split and the gold set, tag a few titles, export the
# quantized model for the browser app, build the app and serve it with `trunk serve`.
# On CPU the training budget is reduced (MULTITAG_DEMO_TRAIN items, 1 epoch, 48-token descriptions)
# so it finishes in minutes; `trainer train` without --limit-train runs the full recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
limit="${MULTITAG_DEMO_TRAIN:-1000}"
model="${MULTITAG_DEMO_MODEL:-runs/demo-triplet}"
cargo build --release -p multitag-trainer
trainer="${CARGO_TARGET_DIR:-target}/release/trainer"
$trainer fetch-model
$trainer label --out runs/labeled.jsonl
if [ ! -f "$model/model.safetensors" ]; then
  echo "training a triplet-loss tagger on the first $limit training items (1 epoch, reduced CPU budget) ..."
  $trainer train --out "$model" --objective triplet --lambda 1 --epochs 1 --limit-train "$limit" \
    --batch-size 16 --lr 1e-4 --description-tokens 48
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
scripts/install-web-tools.sh
export TRUNK_SKIP_VERSION_CHECK=true
if [ "${MULTITAG_DEMO_SERVE:-1}" != 0 ]; then
  echo "building and serving the browser app at http://127.0.0.1:8080 (trunk serve; Ctrl-C stops)"
  exec trunk serve --release
fi
trunk build --release
