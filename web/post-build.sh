#!/bin/sh
# trunk post_build hook (see Trunk.toml), run from the repository root with TRUNK_STAGING_DIR and
# TRUNK_PROFILE set:
#  1. copies the exported models, when present, next to the page: public/model -> model/,
#     public/model-baseline -> model-baseline/, public/relations -> relations/ (the relation
#     extraction model of the Relations view) and public/binder -> binder/ (the Tag view's types
#     described in words); they are generated and large, so not trunk assets;
#  2. in release builds, builds the worker a second time with WebAssembly relaxed SIMD
#     (worker_relaxed.js + worker_relaxed_bg.wasm), which web/worker-loader.js starts where the
#     browser compiles it: its int8 products use i32x4.relaxed_dot_i8x16_i7x16_add_s. A separate
#     target directory, as its RUSTFLAGS would otherwise rebuild trunk's output each time.
#     MULTITAG_RELAXED_SIMD=0 skips it (the page then runs the SIMD128 worker everywhere);
#  3. in release builds, optimizes the wasm files with wasm-opt if a recent one is present.
#
# wasm-opt is run here rather than by trunk (index.html sets data-wasm-opt="0") because binaryen
# older than 116 (Debian bookworm ships 108) corrupts wasm-bindgen's externref table, which gives a
# blank page ("WebAssembly.Table.set(): Argument 1 is invalid for table"). We use, in order:
# $MULTITAG_WASM_OPT, the npm build that scripts/install-web-tools.sh puts in .cache/web-tools, or
# wasm-opt on PATH; one older than 116 is skipped with a warning, and so is none at all.
# MULTITAG_WASM_OPT=0 skips the step.
set -eu
stage="${TRUNK_STAGING_DIR:?run by trunk}"

for m in model model-baseline relations binder; do
  if [ -f "public/$m/manifest.json" ]; then
    mkdir -p "$stage/$m"
    cp public/$m/* "$stage/$m/"
  fi
done

[ "${TRUNK_PROFILE:-debug}" = release ] || exit 0

if [ "${MULTITAG_RELAXED_SIMD:-}" != 0 ]; then
  relaxed=target/wasm-relaxed-simd
  RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" cargo build --release --offline --quiet \
    --target wasm32-unknown-unknown -p multitag-web --bin worker --target-dir "$relaxed"
  wasm-bindgen --target no-modules --no-typescript --out-dir "$stage" --out-name worker_relaxed \
    "$relaxed/wasm32-unknown-unknown/release/worker.wasm"
  echo "post-build: worker_relaxed (relaxed SIMD) built"
fi

[ "${MULTITAG_WASM_OPT:-}" != 0 ] || exit 0   # MULTITAG_WASM_OPT=0: skip, for quick rebuilds

version_of() { "$1" --version 2>/dev/null | sed -n 's/^wasm-opt version \([0-9]*\).*/\1/p'; }
opt=""
for candidate in "${MULTITAG_WASM_OPT:-}" .cache/web-tools/node_modules/.bin/wasm-opt "$(command -v wasm-opt || true)"; do
  [ -n "$candidate" ] && [ -x "$candidate" ] || continue
  v="$(version_of "$candidate")"
  if [ -n "$v" ] && [ "$v" -ge 116 ]; then
    opt="$candidate"
    break
  fi
  echo "post-build: skipping $candidate (wasm-opt version ${v:-unknown}; 116 or newer is needed)" >&2
done
if [ -z "$opt" ]; then
  echo "post-build: no wasm-opt >= 116 found, the wasm is not optimized (scripts/install-web-tools.sh installs one)" >&2
  exit 0
fi
for wasm in "$stage"/*.wasm; do
  [ -f "$wasm" ] || continue
  before=$(wc -c < "$wasm")
  features=""
  case "$wasm" in *_relaxed_bg.wasm) features="--enable-relaxed-simd" ;; esac
  "$opt" -O3 $features \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd \
    "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
  echo "post-build: wasm-opt -O3 $(basename "$wasm"): $before -> $(wc -c < "$wasm") bytes"
done
