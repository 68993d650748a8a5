#!/usr/bin/env bash
# The GPU rows of the speed table (bench/run.sh on CUDA, ours and the PyTorch reference back to
# back on a quiet GPU): MiniLM-L6 at batch 32 x 64 (training and tagging), our bf16 mixed precision
# against the same reference report, and a BERT-base-sized model with random weights (made here
# with transformers, so both sides load the same ones) at batch 32 x 128, training only.
# Usage (device machine, repo root, after `. scripts/gpu/setup.sh`): scripts/gpu/bench.sh OUTDIR
set -uo pipefail
out="${1:?output directory}"
catalog="$MULTITAG_DATA/myntra_products/myntra_products_catalog.csv"
export TRAINER_BIN="$TRAINER" PYTHON="$PY"
train=train-multitask,train-ner

timeout 300 bash bench/run.sh --device cuda --model "$BASE" --catalog "$catalog" --out "$out/minilm"
timeout 120 bash bench/run.sh --device cuda --model "$BASE" --catalog "$catalog" --precision bf16 \
  --skip-reference --workloads "$train" --out "$out/minilm-bf16"
"$PY" bench/table.py "$out/minilm-bf16/ours.json" "$out/minilm/reference.json" | tee "$out/minilm-bf16/table.md"

base=/tmp/mt/bert-base-random
if [ ! -f "$base/model.safetensors" ]; then
  "$PY" - "$base" <<'PY'
import sys, torch
from transformers import BertConfig, BertModel
torch.manual_seed(0)
config = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=512)
BertModel(config, add_pooling_layer=False).save_pretrained(sys.argv[1], safe_serialization=True)
PY
  cp "$BASE/tokenizer.json" "$base/"
fi
for precision in f32 bf16; do
  skip=(); [ "$precision" = bf16 ] && skip=(--skip-reference)
  timeout 240 bash bench/run.sh --device cuda --model "$base" --catalog "$catalog" --title-tokens 128 \
    --precision "$precision" --workloads "$train" "${skip[@]}" --out "$out/bert-base-$precision"
done
"$PY" bench/table.py "$out/bert-base-bf16/ours.json" "$out/bert-base-f32/reference.json" | tee "$out/bert-base-bf16/table.md"
