#!/bin/sh
# trunk post_build hook (see Trunk.toml), run from the repository root with TRUNK_STAGING_DIR and
# TRUNK_PROFILE set:
#  1. copies the exported models, when present, next to the page: public/model -> model/,
#     public/model-baseline -> model-baseline/, public/relations -> relations/ (the relation
#     extraction model of the Relations view) and public/binder -> binder/ (the Tag view's types
#     described in words); they are generated and large, so not trunk assets;
#  2. in release builds, optimizes the wasm files with wasm-opt if a recent one is present.
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
  "$opt" -O3 \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd \
    "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
  echo "post-build: wasm-opt -O3 $(basename "$wasm"): $before -> $(wc -c < "$wasm") bytes"
done
