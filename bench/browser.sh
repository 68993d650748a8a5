#!/usr/bin/env bash
# Browser speed harness: the app and the transformers.js reference, back to back in the same
# headless Chromium, on the same titles and the same trained model, then one table.
#
#   bench/browser.sh [--model DIR] [--titles N] [--batches 1,32] [--parallel 1,2] [--rounds N]
#                    [--base DIST] [--out DIR]
#
# For each round and each N of --parallel: ours with N workers, the reference with N wasm threads,
# ours again (so a drift of the machine shows as a gap between ours before and after). --base
# DIST (the dist/ of another build of the app, with the same model) runs that build too, after
# ours and before the reference, and compares ours to it in after-vs-before.md. Each run is
# `browser-bench` (tests/e2e): cold load, warm reload, then the first --titles catalog titles tagged
# from strings to entities, one title in flight at batch 1 and in batches of 32.
#
# The model: --model, a trained tagger (`trainer train`; default runs/demo, what scripts/demo.sh
# trains), for both sides: ours is its export in public/model (MULTITAG_E2E_MODEL; scripts/demo.sh
# writes it, q4k), the reference's its ONNX q8 export (bench/browser/export_model.py in the
# reference's venv, into .cache/bench-browser/model; redone when the model is newer). The
# reference's page and transformers.js (pinned in bench/browser/package.json) install with
# `npm ci` the first time; the app is dist/ (`trunk build --release`, built when missing).
# Reports: --out (default runs/bench/browser): one JSON per run and table.md (bench/browser/table.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

model=runs/demo titles=1000 batches=1,32 parallel=1,2 rounds=1 out=runs/bench/browser base=
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --titles) titles="$2"; shift 2 ;;
    --batches) batches="$2"; shift 2 ;;
    --parallel) parallel="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --base) base="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "bench/browser.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$model/model.safetensors" ] || {
  echo "bench/browser.sh: no trained model in $model (scripts/demo.sh trains runs/demo; or --model DIR)" >&2
  exit 1
}
export_dir="${MULTITAG_E2E_MODEL:-public/model}"
[ -f "$export_dir/manifest.json" ] || {
  echo "bench/browser.sh: no exported model in $export_dir (trainer export --model $model --quant q4k --out $export_dir)" >&2
  exit 1
}
[ -z "$base" ] || [ -f "$base/index.html" ] || {
  echo "bench/browser.sh: --base $base is not a built app (no index.html)" >&2
  exit 1
}
mkdir -p "$out"

if [ ! -f dist/index.html ]; then
  scripts/install-web-tools.sh
  TRUNK_SKIP_VERSION_CHECK=true trunk build --release
fi
if [ ! -f bench/browser/node_modules/@huggingface/transformers/dist/transformers.min.js ]; then
  # --ignore-scripts: onnxruntime-node's install script downloads native binaries the browser
  # never uses.
  (cd bench/browser && npm ci --no-audit --no-fund --ignore-scripts)
fi
reference_model=.cache/bench-browser/model
if [ ! -f "$reference_model/onnx/model_quantized.onnx" ] ||
  [ "$model/model.safetensors" -nt "$reference_model/onnx/model_quantized.onnx" ]; then
  bash bench/reference/setup.sh
  .cache/bench-venv/bin/python bench/browser/export_model.py --model "$model" --out "$reference_model"
fi
cargo build --release -p multitag-e2e --bin browser-bench
bench="${CARGO_TARGET_DIR:-target}/release/browser-bench"

common=(--titles "$titles" --batches "$batches")
for round in $(seq 1 "$rounds"); do
  for n in ${parallel//,/ }; do
    for side in ours-a ${base:+base} reference ours-b; do
      file="$out/r$round-p$n-$side.json"
      echo "== round $round, $n in parallel: $side" >&2
      case "$side" in
        reference) "$bench" "${common[@]}" --reference "$reference_model" --threads "$n" --out "$file" >/dev/null ;;
        base) MULTITAG_DIST="$base" "$bench" "${common[@]}" --workers "$n" --out "$file" >/dev/null ;;
        *) "$bench" "${common[@]}" --workers "$n" --out "$file" >/dev/null ;;
      esac
    done
  done
done
python3 bench/browser/table.py "$out" | tee "$out/table.md"
if [ -n "$base" ]; then
  python3 bench/browser/compare_builds.py "$out" base "after / before" | tee "$out/after-vs-before.md"
fi
