#!/usr/bin/env bash
# Coverage-guided fuzzing of the readers of untrusted input (fuzz/README.md), with cargo fuzz on
# the nightly toolchain: every target for RUNS executions (default 10 million), or at most
# SECONDS_EACH seconds when set. The corpus grows in a scratch copy; the committed seeds in fuzz/corpus stay
# small. SANITIZER=address adds AddressSanitizer (about 10x slower; the code under test is safe
# Rust, so by default none, which is what makes millions of executions affordable).
#   scripts/fuzz.sh                 # all targets, 10M executions each
#   RUNS=100000 scripts/fuzz.sh gguf
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
runs="${RUNS:-10000000}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(catalog titles jsonl labeled gold config tokenizer gguf)
sanitizer="${SANITIZER:-none}"
cargo +nightly fuzz build -O -s "$sanitizer"
work="${FUZZ_WORK:-$(mktemp -d)}"
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  # The gguf seed is written by the tests (fuzz/src/lib.rs gguf_seed), not committed.
  cp corpus/"$t"/* "$work/$t/" 2>/dev/null || true
  limit=(-runs="$runs")
  [ -z "${SECONDS_EACH:-}" ] || limit+=(-max_total_time="$SECONDS_EACH")
  echo "== $t"
  status=0
  cargo +nightly fuzz run -O -s "$sanitizer" "$t" "$work/$t" -- "${limit[@]}" -rss_limit_mb=4096 \
    -max_len=65536 -print_final_stats=1 >"$work/$t.log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^Done" "$work/$t.log" || true
  if [ "$status" != 0 ]; then
    tail -40 "$work/$t.log"
    echo "$t: the fuzzer found a failure (artifact under fuzz/artifacts/$t)" >&2
    exit "$status"
  fi
done
echo "logs and grown corpora: $work"
