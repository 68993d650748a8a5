#!/usr/bin/env bash
# Table 1 on a GPU machine. Starts scripts/gpu/queue.sh detached (setsid), so the queue outlives
# one device call: a next call on the still-warm machine finds it running and waits on; on a fresh
# machine the results carried back in .gpu/compare.tar.xz are unpacked first and finished runs are
# skipped. Waits until the queue ends or DEADLINE seconds pass, then packs every finished run
# (runs.jsonl, predictions, logs) into $OUT/compare.tar.xz. Merge them here with
#   trainer compare --summary-only --out DIR   (over the concatenated runs.jsonl and predictions/).
# Usage (device machine, repo root): . scripts/gpu/setup.sh; DEADLINE=540 scripts/gpu/compare.sh
set -uo pipefail
deadline=${DEADLINE:-540}
start=$(date +%s)
out=/tmp/mt/compare
if [ ! -d "$out" ] && [ -f .gpu/compare.tar.xz ]; then tar -C /tmp/mt -xJf .gpu/compare.tar.xz; fi
mkdir -p "$out"
pidfile=/tmp/mt/queue.pid
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
if ! running; then
  # A copy: the working tree may be re-synced under a running script between calls.
  cp scripts/gpu/queue.sh /tmp/mt/queue.sh
  setsid nohup bash /tmp/mt/queue.sh >> "$out/queue.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
fi
while [ $(( $(date +%s) - start )) -lt "$deadline" ] && running; do sleep 5; done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader | head -3
tail -3 "$out/queue.log"
grep -h "test F1" "$out"/*.log
tar -C /tmp/mt -cJf "$OUT/compare.tar.xz" compare
