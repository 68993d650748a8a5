#!/usr/bin/env bash
# Packs what bench/run.sh needs on a GPU machine that has no network, no ../shared and no model
# cache into .cache/gpu-carry (git-ignored, under 64 MiB): the CUDA build of the trainer (stripped,
# gzipped), the base model with its weights stored as f16 (both sides load them as f32; speed does
# not depend on the values) and the first 2,000 catalog titles. Run it on the CPU machine after
#   eval "$(../shared/tools/cuda-toolchain.sh)" && CARGO_TARGET_DIR=target/cuda cargo build --release --features cuda -p multitag-trainer
# then, on the GPU machine (the device tool, carrying .cache/gpu-carry):
#   gunzip -kf .cache/gpu-carry/trainer.gz && chmod +x .cache/gpu-carry/trainer &&
#   TRAINER_BIN=.cache/gpu-carry/trainer bash bench/run.sh --device cuda \
#     --model .cache/gpu-carry/model --titles .cache/gpu-carry/titles.txt --out "$OUT/bench"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${TRAINER_CUDA_BIN:-target/cuda/release/trainer}"
model="${1:-${MULTITAG_CACHE:-.cache}/models/all-MiniLM-L6-v2}"
catalog="${MULTITAG_DATA:-../shared/data}/myntra_products/myntra_products_catalog.csv"
py="${PYTHON:-.cache/bench-venv/bin/python}"
out=.cache/gpu-carry
[ -x "$bin" ] || { echo "no CUDA build at $bin" >&2; exit 1; }
mkdir -p "$out/model"
strip -o "$out/trainer" "$bin"
gzip -9f "$out/trainer"
cp "$model/config.json" "$model/tokenizer.json" "$out/model/"
"$py" - "$model/model.safetensors" "$out/model/model.safetensors" <<'PY'
import sys
from safetensors.torch import load_file, save_file
t = load_file(sys.argv[1])
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in t.items()}, sys.argv[2])
PY
python3 - "$catalog" "$out/titles.txt" <<'PY'
import csv, sys
with open(sys.argv[1], encoding="utf-8", newline="") as f:
    titles = [r["ProductName"].strip() for r in csv.DictReader(f) if r["ProductName"].strip()]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write("\n".join(titles[:2000]) + "\n")
PY
du -sh "$out"
