// The transformers.js reference of the browser benchmark (bench/browser.sh, `browser-bench
// --reference`). It does the app's tagging work with transformers.js: strings in, entities out
// (the token-classification pipeline with BIO grouping, `aggregation_strategy: "simple"`), on the
// ONNX q8 export of the same trained model (bench/browser/export_model.py), and reports in the
// app's benchmark schema:
// - `#model-status` carries data-state="ready", data-load-ms (page start to pipeline ready, as the
//   app's badge) and data-from-cache once the model is loaded;
// - `window.referenceBench(titles, batchSize, inFlight)` resolves to the JSON report of the app's
//   `window.multitagBench`, with the same length-sorted batches (windows of 256 titles).
// Query: `?threads=N` (onnxruntime-web's wasm threads; more than one needs a cross-origin isolated
// page, which the benchmark's server makes it).
import { env, pipeline } from "/transformers/transformers.min.js";

const SORT_WINDOW = 256;
const params = new URLSearchParams(location.search);
const threads = Math.max(1, Number(params.get("threads") || 1));
const status = document.getElementById("model-status");

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = "/models/";
env.useBrowserCache = true;
env.backends.onnx.wasm.wasmPaths = "/ort/";
env.backends.onnx.wasm.numThreads = threads;

// Whether the model files were in the Cache API before this load (the warm reload).
async function cached() {
  try {
    const cache = await caches.open("transformers-cache");
    return (await cache.keys()).length > 0;
  } catch {
    return false;
  }
}

// The app's `batch_order`: windows of SORT_WINDOW titles in input order, each sorted (stably) by
// length in characters and cut into batches.
function batchOrder(titles, batch) {
  const window = Math.max(SORT_WINDOW, batch);
  const out = [];
  for (let w = 0; w < titles.length; w += window) {
    const idx = [];
    for (let i = w; i < Math.min(w + window, titles.length); i++) idx.push(i);
    idx.sort((a, b) => [...titles[a]].length - [...titles[b]].length);
    for (let b = 0; b < idx.length; b += batch) out.push(idx.slice(b, b + batch));
  }
  return out;
}

let tagger;
try {
  const fromCache = await cached();
  tagger = await pipeline("token-classification", "reference", { dtype: "q8", device: "wasm" });
  status.dataset.loadMs = performance.now().toFixed(1);
  status.dataset.fromCache = String(fromCache);
  status.dataset.threads = String(threads);
  status.dataset.isolated = String(self.crossOriginIsolated === true);
  status.dataset.state = "ready";
  status.textContent = `reference ready (${threads} thread(s))`;
} catch (e) {
  status.dataset.state = "failed";
  status.textContent = `reference failed: ${e}`;
  throw e;
}

window.referenceBench = async (titles, batch = 32, inFlight = 1) => {
  batch = Math.max(1, batch | 0);
  inFlight = Math.max(1, inFlight | 0);
  const requests = batchOrder(titles, batch).map((indices) => indices.map((i) => titles[i]));
  const started = performance.now();
  let workerMs = 0;
  let entities = 0;
  let next = 0;
  // `inFlight` requests open at a time, as the app's benchmark keeps one per worker.
  async function lane() {
    while (next < requests.length) {
      const chunk = requests[next++];
      const t = performance.now();
      const out = await tagger(chunk, { aggregation_strategy: "simple" });
      workerMs += performance.now() - t;
      for (const groups of out) entities += groups.length;
    }
  }
  await Promise.all(Array.from({ length: inFlight }, lane));
  const wallMs = performance.now() - started;
  const n = titles.length;
  return JSON.stringify({
    titles: n,
    batch_size: batch,
    workers: 1,
    threads,
    in_flight: inFlight,
    length_sorted_window: SORT_WINDOW,
    entities,
    wall_ms: wallMs,
    worker_ms: workerMs,
    titles_per_s: wallMs > 0 ? (n * 1000) / wallMs : 0,
    worker_titles_per_s: workerMs > 0 ? (n * 1000) / workerMs : 0,
  });
};
