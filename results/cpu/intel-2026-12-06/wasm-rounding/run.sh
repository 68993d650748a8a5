#!/bin/bash
# The browser's relaxed-SIMD int8 product, before (BEFORE, default 984ee25: input rows rounded by
# scalar loops, the products' lanes summed and stored one output at a time) and after (the working
# tree: crates/model/src/kernels/int8/round.rs rounds 16 values at a time, relaxed.rs sums four
# outputs' lanes by shuffles and stores them as one vector), in headless Chromium. Per shape
# (title-sized: 20 token rows): median ms of 7 rounds of each, alternating, and how many outputs
# differ to the bit; then the rounding alone, and a check of the rounding on awkward rows.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
before="${BEFORE:-984ee25}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$here/Cargo.toml" "$here/src" "$work/"
mkdir -p "$work/src/old_int8" "$work/src/new_int8"
git -C "$root" show "$before:crates/model/src/kernels/int8/relaxed.rs" > "$work/src/old_int8/relaxed.rs"
# The rounding functions of the old mod.rs, from scale_for to round_unsigned.
git -C "$root" show "$before:crates/model/src/kernels/int8/mod.rs" \
  | sed -n '/^\/\/\/ `(scale, 1\/scale)`/,/^\/\/\/ Eight i32 lanes/p' | sed '$d' \
  | sed 's/^fn /pub fn /' > "$work/src/old_int8/round_fns.rs"
cp "$root/crates/model/src/kernels/int8/relaxed.rs" "$root/crates/model/src/kernels/int8/round.rs" "$work/src/new_int8/"
(cd "$work" && RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" cargo build -q --release --target wasm32-unknown-unknown)
b64=$(base64 -w0 "$work/target/wasm32-unknown-unknown/release/wasm_rounding.wasm")
cat > "$work/index.html" <<HTML
<!DOCTYPE html><html><body><pre id="out">running</pre><script>
(() => {
  const out = document.getElementById('out');
  try {
    const bytes = Uint8Array.from(atob('$b64'), c => c.charCodeAt(0));
    const e = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
    const time = (f, n) => { f(); const t = performance.now(); for (let i = 0; i < n; i++) f(); return (performance.now() - t) / n; };
    const differing = e.rounding_differs();
    const lines = ['rounding, rows of 0 to 70 values with NaN, infinities, -0, ties and rows away from 0: finite values or scales rounded differently ' + differing + '; NaN values rounded differently ' + e.nan_diff() + '; after, NaN values not rounded to 0: ' + e.nan_new_nonzero_chunks() + ' in the 16-value chunks, ' + e.nan_new_nonzero() + ' in the scalar tails (f32::clamp compiles to relaxed min/max there too)'];
    const med = v => v.slice().sort((p, q) => p - q)[3];
    for (const [rows, k, n, reps] of [[20, 384, 1536, 100] /* warm-up */, [20, 384, 1152, 200], [20, 384, 384, 400], [20, 384, 1536, 200], [20, 1536, 384, 200], [640, 384, 1536, 10]]) {
      e.init(rows, k, n);
      const d = e.differ();
      for (let w = 0; w < 60; w++) { e.run_old(); e.run_new(); e.round_old(); e.round_new(); }
      const ta = [], tb = [], ra = [], rb = [];
      for (let round = 0; round < 7; round++) {
        ta.push(time(e.run_old, reps)); tb.push(time(e.run_new, reps));
        ra.push(time(e.round_old, reps)); rb.push(time(e.round_new, reps));
      }
      const [a, b] = [med(ta), med(tb)];
      lines.push(rows + 'x' + k + 'x' + n + ': product ms, median of 7: before ' + a.toFixed(3) + ', after ' + b.toFixed(3) + ' (' + (a / b).toFixed(2) + 'x, ' + (rows * k * n / b / 1e6).toFixed(1) + ' GMAC/s); its rounding alone ' + med(ra).toFixed(4) + ' to ' + med(rb).toFixed(4) + ' ms; outputs differing ' + d);
    }
    out.textContent = lines.join('\n');
  } catch (err) { out.textContent = 'error: ' + err + ' ' + err.stack; }
})();
</script></body></html>
HTML
chromium --headless --no-sandbox --disable-gpu --dump-dom "file://$work/index.html" 2>/dev/null \
  | sed -n '/<pre/,/<\/pre>/p' | sed 's/<[^>]*>//g'
