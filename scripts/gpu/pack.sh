#!/usr/bin/env bash
# Packs, on this (GPU-less) machine, what a GPU session carries to the device machine in .gpu/
# (git-ignored: name its paths in the device tool's `carry`, 64 MiB in all): the CUDA trainer and
# the CUDA test binaries of the model and trainer crates (built into target/cuda with
# ../shared/tools/cuda-toolchain.sh), an f16 copy of the base model, the catalog and the labeled
# JSONL (runs/labeled.jsonl, made with `trainer label` if missing), xz-compressed. On the device machine scripts/gpu/setup.sh unpacks them.
# Usage: scripts/gpu/pack.sh [MODEL_DIR]   (default .cache/models/all-MiniLM-L6-v2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
model="${1:-.cache/models/all-MiniLM-L6-v2}"
data="${MULTITAG_DATA:-../shared/data}"
python=.cache/bench-venv/bin/python
[ -x "$python" ] || bash bench/reference/setup.sh
eval "$(../shared/tools/cuda-toolchain.sh)"
CARGO_TARGET_DIR=target/cuda cargo build --release -p multitag-trainer --features cuda
mkdir -p .gpu/tests .gpu/model
# The unit-test executables of the two crates whose tests cover the CUDA kernels.
CARGO_TARGET_DIR=target/cuda \
  cargo test --release --no-run --features cuda -p multitag-model -p multitag-trainer \
    --message-format=json 2>/dev/null |
  "$python" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"] \
            and m["target"]["name"] in ("multitag_model", "trainer"):
        print(m["target"]["name"], m["executable"])' |
  while read -r name exe; do xz -T2 -c "$exe" > ".gpu/tests/$name.xz"; done
xz -T2 -c target/cuda/release/trainer > .gpu/trainer.xz
cp "$model/config.json" "$model/tokenizer.json" .gpu/model/
"$python" - "$model/model.safetensors" .gpu/model/model.safetensors <<'PY'
import sys
from safetensors.torch import load_file, save_file
tensors = load_file(sys.argv[1])
save_file({k: v.half().contiguous() for k, v in tensors.items()}, sys.argv[2], metadata={"format": "pt"})
PY
xz -T2 -c "$data/myntra_products/myntra_products_catalog.csv" > .gpu/catalog.csv.xz
[ -f runs/labeled.jsonl ] || MULTITAG_DATA="$data" cargo run --release -q -p multitag-trainer -- \
  label --out runs/labeled.jsonl
xz -T2 -c runs/labeled.jsonl > .gpu/labeled.jsonl.xz
du -sh .gpu/* .gpu/tests/*
