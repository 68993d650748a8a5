#!/usr/bin/env bash
# Installs, idempotently, what the browser app (web/) needs to build and its end-to-end tests need
# to run. Nothing is downloaded by trunk itself (Trunk.toml sets offline = true):
#   - the wasm32-unknown-unknown target;
#   - trunk 0.21 (0.22 needs a newer rustc) and wasm-bindgen-cli at exactly the wasm-bindgen
#     version in Cargo.lock, from crates.io;
#   - the crates the wasm build needs (`cargo fetch`: trunk runs cargo with --offline);
#   - wasm-opt from the npm package binaryen into .cache/web-tools (Debian bookworm's binaryen 108
#     breaks wasm-bindgen's output; web/post-build.sh uses this one for release builds);
#   - Debian's chromium and chromium-driver for the browser tests (MULTITAG_SKIP_APT=1 skips).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
  || rustup target add wasm32-unknown-unknown

if ! trunk --version 2>/dev/null | grep -q '^trunk 0\.21\.'; then
  cargo install trunk --version '~0.21' --locked
fi

# The wasm-bindgen crate version pinned by Cargo.lock; the CLI must match it exactly.
bindgen_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
if [ -z "$bindgen_version" ]; then
  echo "install-web-tools: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $bindgen_version"; then
  cargo install wasm-bindgen-cli --version "=$bindgen_version" --force
fi

cargo fetch -q

binaryen_version=132.0.0
tools=.cache/web-tools
if ! "$tools/node_modules/.bin/wasm-opt" --version 2>/dev/null | grep -q "version ${binaryen_version%%.*}"; then
  if command -v npm >/dev/null 2>&1; then
    mkdir -p "$tools"
    npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "binaryen@$binaryen_version"
  else
    echo "install-web-tools: no npm, so no wasm-opt: release builds will not be optimized" >&2
  fi
fi

if [ "${MULTITAG_SKIP_APT:-0}" != 1 ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  # Fonts for the scripts the tests paste (emoji, Devanagari), so screenshots show glyphs, not boxes.
  [ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
  [ -d /usr/share/fonts/truetype/lohit-devanagari ] || missing+=(fonts-lohit-deva)
  if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=()
    [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
  fi
fi
echo "install-web-tools: $(trunk --version), $(wasm-bindgen --version), $("$tools/node_modules/.bin/wasm-opt" --version 2>/dev/null || echo 'missing'), $(/usr/bin/chromium --version 2>/dev/null || echo 'no chromium')"
