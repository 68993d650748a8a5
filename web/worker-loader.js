// Starts the model worker: loads wasm-bindgen's no-modules glue (worker.js, written by trunk for
// `data-bin="worker" data-type="worker"`) and instantiates worker_bg.wasm, whose main() installs
// the message handler and posts "ready". A failure to start (no WebAssembly SIMD, out of memory,
// a missing file) is rethrown as an uncaught error, which the page's Worker.onerror reports.
importScripts("./worker.js");
wasm_bindgen({ module_or_path: "./worker_bg.wasm" }).catch((e) => {
  setTimeout(() => {
    throw new Error("the model worker could not start: " + e);
  });
});
