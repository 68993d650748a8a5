//! The benchmark mode (`?bench=1`): `window.multitagBench(titles, batchSize, inFlight)` tags
//! `titles` with the page's workers, `inFlight` requests open at a time (default: one per worker,
//! as the tag view sends them), and resolves to a JSON report (a string), which `browser-bench` in
//! `tests/e2e` calls; `window.multitagLoseGpu()`, which destroys the workers' GPU devices (the
//! end-to-end test of the fallback); and a button in the tag view that benchmarks the pasted
//! titles at batch sizes 1 and `BATCH_SIZE`. Both batch and schedule requests exactly as the tag
//! view does, so the numbers are the tag view's.
use futures_util::StreamExt;
use wasm_bindgen::prelude::*;

use super::browser::{now, query_param, window};
use crate::client::pool;
use crate::view::{batch_order, BATCH_SIZE, SORT_WINDOW};

/// Whether the page was opened with `?bench=1`.
pub fn enabled() -> bool {
    query_param("bench").as_deref() == Some("1")
}

/// Installs `window.multitagBench`.
pub fn install_hook() {
    let hook = Closure::<dyn Fn(JsValue, JsValue, JsValue) -> js_sys::Promise>::new(
        |titles: JsValue, batch: JsValue, in_flight: JsValue| {
            let titles: Vec<String> = js_sys::Array::from(&titles)
                .iter()
                .filter_map(|v| v.as_string())
                .collect();
            let batch = batch.as_f64().unwrap_or(BATCH_SIZE as f64).max(1.0) as usize;
            let in_flight = in_flight.as_f64().map(|n| n.max(1.0) as usize);
            wasm_bindgen_futures::future_to_promise(async move {
                let report = run(titles, batch, in_flight)
                    .await
                    .map_err(|e| JsValue::from_str(&e))?;
                Ok(JsValue::from_str(&report.to_string()))
            })
        },
    );
    let _ = js_sys::Reflect::set(
        &window(),
        &JsValue::from_str("multitagBench"),
        hook.as_ref(),
    );
    // The hook lives as long as the page.
    hook.forget();
    // `window.multitagLoseGpu()`: every worker loses its GPU device, for the fallback's test.
    let lose = Closure::<dyn Fn()>::new(|| {
        if let Some(pool) = pool() {
            pool.destroy_gpu_devices();
        }
    });
    let _ = js_sys::Reflect::set(
        &window(),
        &JsValue::from_str("multitagLoseGpu"),
        lose.as_ref(),
    );
    lose.forget();
}

/// Tags `titles` in batches of `batch`, `in_flight` requests open at a time (default: one per
/// worker); the times and throughput.
async fn run(
    titles: Vec<String>,
    batch: usize,
    in_flight: Option<usize>,
) -> Result<serde_json::Value, String> {
    let pool = pool().ok_or("the worker is not running")?;
    let in_flight = in_flight.unwrap_or(pool.size());
    let started = now();
    let mut worker_ms = 0.0;
    let mut entities = 0;
    // The tag view's batching (similar lengths together, windows of SORT_WINDOW).
    let lengths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    let requests = batch_order(&lengths, batch, SORT_WINDOW)
        .into_iter()
        .map(|indices| {
            let chunk: Vec<String> = indices.iter().map(|&i| titles[i].clone()).collect();
            let pool = pool.clone();
            async move { pool.tag(chunk, batch).await }
        });
    let mut replies = futures_util::stream::iter(requests).buffered(in_flight);
    while let Some(reply) = replies.next().await {
        let (results, ms) = reply?;
        worker_ms += ms;
        entities += results.iter().map(|r| r.entities.len()).sum::<usize>();
    }
    drop(replies);
    let wall_ms = now() - started;
    let n = titles.len() as f64;
    Ok(serde_json::json!({
        "titles": titles.len(),
        "batch_size": batch,
        "workers": pool.taggers(),
        "in_flight": in_flight,
        "length_sorted_window": SORT_WINDOW,
        "entities": entities,
        "wall_ms": wall_ms,
        // Summed over the workers: with several, it exceeds the wall time.
        "worker_ms": worker_ms,
        "titles_per_s": if wall_ms > 0.0 { n * 1000.0 / wall_ms } else { 0.0 },
        "worker_titles_per_s": if worker_ms > 0.0 { n * 1000.0 / worker_ms } else { 0.0 },
    }))
}

/// The tag view's benchmark button: `titles` at batch size 1, then `BATCH_SIZE`; the text the view
/// shows (pretty JSON with the model's load time, or why it failed).
pub async fn pasted(titles: Vec<String>, load_ms: Option<f64>) -> String {
    let mut reports = Vec::new();
    for batch in [1, BATCH_SIZE] {
        match run(titles.clone(), batch, None).await {
            Ok(r) => reports.push(r),
            Err(e) => return format!("Benchmark failed: {e}"),
        }
    }
    let report = serde_json::json!({
        "load_ms": load_ms,
        "runs": reports,
    });
    serde_json::to_string_pretty(&report).unwrap_or_default()
}
