#!/usr/bin/env bash
# Device-side set-up for a GPU session (the `device` tool's H100/H200 machines): unpacks what the
# session carried in .gpu/ (made by scripts/gpu/pack.sh: the CUDA trainer binary and test binaries,
# an f16 copy of the base model, the catalog and the labeled JSONL, all xz-compressed), points the
# dynamic loader at the machine's PyTorch CUDA libraries, and makes an f32 copy of the model for
# training. Source it: `. scripts/gpu/setup.sh`.
set -euo pipefail
export PY=/opt/torch/.venv/bin/python
cu="$(dirname "$(find /opt -name 'libcublas.so.13' | head -1)")"
export LD_LIBRARY_PATH="$cu:${LD_LIBRARY_PATH:-}"
mkdir -p /tmp/mt/data/myntra_products /tmp/mt/tests
# Each piece only where this call carried it (a call may carry a part of .gpu/, 64 MiB in all).
unpack() { # source target [executable]
  if [ ! -f "$2" ] && [ -f "$1" ]; then xz -dc "$1" > "$2"; [ -z "${3:-}" ] || chmod +x "$2"; fi
}
unpack .gpu/trainer.xz /tmp/mt/trainer x
unpack .gpu/catalog.csv.xz /tmp/mt/data/myntra_products/myntra_products_catalog.csv
unpack .gpu/labeled.jsonl.xz /tmp/mt/labeled.jsonl
for t in .gpu/tests/*.xz; do
  if [ -e "$t" ]; then unpack "$t" "/tmp/mt/tests/$(basename "$t" .xz)" x; fi
done
if [ ! -f /tmp/mt/model/model.safetensors ] && [ -f .gpu/model/model.safetensors ]; then
  mkdir -p /tmp/mt/model && cp .gpu/model/config.json .gpu/model/tokenizer.json /tmp/mt/model/
  "$PY" - <<'PY'
from safetensors.torch import load_file, save_file
save_file({k: v.float().contiguous() for k, v in load_file(".gpu/model/model.safetensors").items()},
          "/tmp/mt/model/model.safetensors", metadata={"format": "pt"})
PY
fi
export MULTITAG_DATA=/tmp/mt/data TRAINER=/tmp/mt/trainer BASE=/tmp/mt/model
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
