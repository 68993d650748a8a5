// Starts the model worker: loads wasm-bindgen's no-modules glue and instantiates its wasm, whose
// main() installs the message handler and posts "ready". A failure to start (no WebAssembly SIMD,
// out of memory, a missing file) is rethrown as an uncaught error, which the page's
// Worker.onerror reports.
//
// Two builds of the worker: worker.js + worker_bg.wasm (trunk, `data-bin="worker"
// data-type="worker"`: SIMD128) and worker_relaxed.js + worker_relaxed_bg.wasm (web/post-build.sh,
// release builds: SIMD128 and relaxed SIMD, whose int8 dot product multiplies twice as many
// inputs per instruction). A module with one relaxed instruction does not compile where relaxed
// SIMD is missing (Safari), so the probe below, the smallest module using
// i32x4.relaxed_dot_i8x16_i7x16_add_s, decides. `?simd=plain` keeps the SIMD128 build. The page
// shows which build runs (#backend[data-simd]).
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0, 253, 12, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 147, 2, 11,
]);

const plain = new URLSearchParams(self.location.search).get("simd") === "plain";

let build = "worker";
if (!plain && WebAssembly.validate(RELAXED_PROBE)) {
  try {
    importScripts("./worker_relaxed.js");
    build = "worker_relaxed";
  } catch (_) {
    // Not built (debug builds make only the SIMD128 worker): the page shows data-simd=simd128.
  }
}
if (build === "worker") importScripts("./worker.js");
wasm_bindgen({ module_or_path: `./${build}_bg.wasm` }).catch((e) => {
  setTimeout(() => {
    throw new Error("the model worker could not start: " + e);
  });
});
