#!/usr/bin/env bash
# Table 1 on a GPU machine: one `trainer compare` process per seed, side by side on the one GPU
# (a MiniLM-sized model leaves most of an H100 idle), plus the PyTorch reference
# (quality_ref.py --jsonl over our labels) for the cross-check. Results that finish before
# DEADLINE seconds are packed into $OUT; compare resumes from them in a later session
# (carry .gpu/compare/ back: its runs.jsonl files skip finished runs).
# Usage (device machine, repo root): . scripts/gpu/setup.sh; DEADLINE=540 scripts/gpu/compare.sh
set -uo pipefail
deadline=${DEADLINE:-540}
seeds=${SEEDS:-5}
start=$(date +%s)
out=/tmp/mt/compare; mkdir -p "$out"
if [ -z "${NO_SMOKE:-}" ]; then
  "$TRAINER" train --model "$BASE" --device cuda --out /tmp/mt/smoke --objective triplet \
    --limit-train 256 --epochs 1 > "$out/smoke.log" 2>&1 || { tail -20 "$out/smoke.log"; exit 1; }
  tail -3 "$out/smoke.log"
fi
# JOBS: space-separated variant@seed, one process each; default every variant for SEEDS seeds.
if [ -n "${JOBS:-}" ]; then
  for job in $JOBS; do
    v="${job%@*}"; s="${job#*@}"; dir="$out/${v//[:.]/_}-s$s"
    "$TRAINER" compare --model "$BASE" --device cuda --out "$dir" --first-seed "$s" --seeds 1 \
      --variants "$v" > "$dir.log" 2>&1 &
  done
else
  for s in $(seq 1 "$seeds"); do
    "$TRAINER" compare --model "$BASE" --device cuda --out "$out/seed$s" --first-seed "$s" --seeds 1 \
      ${VARIANTS:+--variants "$VARIANTS"} > "$out/seed$s.log" 2>&1 &
  done
fi
if [ -n "${EXTRA:-}" ]; then bash -c "$EXTRA" > "$out/extra.log" 2>&1 & fi
if [ -n "${REF_SEEDS:-}" ]; then
  "$PY" .gpu/quality_ref.py --model "$BASE" --jsonl /tmp/mt/labeled.jsonl --seeds "$REF_SEEDS" \
    --epochs 3 --lams "${REF_LAMS:-0,1}" > "$out/quality_ref.log" 2>&1 &
fi
while [ $(( $(date +%s) - start )) -lt "$deadline" ] && [ -n "$(jobs -r)" ]; do sleep 5; done
kill $(jobs -p) 2>/dev/null
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
grep -h "test F1" "$out"/*.log
tail -5 "$out/extra.log" 2>/dev/null
tail -12 "$out/quality_ref.log" 2>/dev/null
tar -C /tmp/mt -cJf "$OUT/compare.tar.xz" compare
