//! The page: a tag view (titles in, coloured entity chips out, JSONL download) and a similarity
//! view (title x description cosine heat map, side by side with the baseline when one is exported).
//! All model work happens in the workers (`client`); this module only keeps state and renders.
//!
//! Elements carry stable ids, classes and data attributes for the end-to-end tests:
//! `#model-status[data-state=starting|loading|ready|failed]` (with `data-load-ms`, `data-bytes`,
//! `data-from-cache` when ready, and `data-workers` / `data-pool-size`: workers with the model
//! loaded, of how many), `#model-error`, `#results > li.result`, `mark.ent[data-label]
//! [data-start][data-end]`, `table.heatmap[data-slot] td.cell[data-sim]`, `td.best`.
use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use futures_util::StreamExt;

use crate::client::{pool, WorkerPool};
use crate::protocol::{
    FromWorker, LoadError, LoadErrorKind, ModelInfo, Slot, TaggedTitle, ToWorker,
};
use crate::view::{
    batch_order, best_matches, diagonal_wins, format_bytes, format_ms, heat_color, heat_is_dark,
    label_class, matrix_range, parse_lines, segments, to_jsonl, BATCH_SIZE, MAKE_MODEL_COMMANDS,
    MAX_SIMILARITY_ITEMS, MAX_TITLES, SORT_WINDOW,
};

/// The worker's loader (web/worker-loader.js), copied next to the page by trunk.
const WORKER_SCRIPT: &str = "./worker-loader.js";
/// How many bundled examples "Load examples" puts in the similarity view.
const SIMILARITY_EXAMPLES: usize = 12;

#[derive(Debug, Clone, PartialEq)]
enum ModelState {
    Starting,
    Loading {
        file: String,
        loaded: u64,
        total: Option<u64>,
        from_cache: bool,
    },
    Ready(ModelInfo),
    Failed(LoadError),
    Crashed(String),
}

#[derive(Debug, Clone, PartialEq)]
enum BaselineState {
    /// Not looked for yet, or `model-baseline/` is not there.
    Absent,
    Available,
    Loading(Option<(u64, Option<u64>)>),
    Ready,
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Tag,
    Similarity,
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    index: usize,
    result: TaggedTitle,
    /// The worker's time for this title's batch divided by the batch's size.
    ms: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct TagRun {
    total: usize,
    done: usize,
    dropped: usize,
    worker_ms: f64,
    wall_ms: f64,
    running: bool,
    error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct SimPanel {
    slot: Slot,
    matrix: Vec<Vec<f32>>,
    ms: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct SimResult {
    titles: Vec<String>,
    descriptions: Vec<String>,
    panels: Vec<SimPanel>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Example {
    title: String,
    description: String,
}

/// Every piece of page state, as copyable signal handles shared through context.
#[derive(Clone, Copy)]
struct AppState {
    tab: RwSignal<Tab>,
    model: RwSignal<ModelState>,
    load_ms: RwSignal<Option<f64>>,
    /// Workers with the main model loaded.
    taggers: RwSignal<usize>,
    baseline: RwSignal<BaselineState>,
    tag_input: RwSignal<String>,
    rows: RwSignal<Vec<Arc<Row>>>,
    run: RwSignal<TagRun>,
    generation: RwSignal<u64>,
    download_url: RwSignal<Option<String>>,
    sim_titles: RwSignal<String>,
    sim_descriptions: RwSignal<String>,
    sim: RwSignal<Option<SimResult>>,
    sim_status: RwSignal<Option<String>>,
    sim_running: RwSignal<bool>,
    examples: RwSignal<Option<Result<Vec<Example>, String>>>,
    bench: RwSignal<Option<String>>,
}

impl AppState {
    fn new() -> Self {
        Self {
            tab: RwSignal::new(Tab::Tag),
            model: RwSignal::new(ModelState::Starting),
            load_ms: RwSignal::new(None),
            taggers: RwSignal::new(0),
            baseline: RwSignal::new(BaselineState::Absent),
            tag_input: RwSignal::new(String::new()),
            rows: RwSignal::new(Vec::new()),
            run: RwSignal::new(TagRun::default()),
            generation: RwSignal::new(0),
            download_url: RwSignal::new(None),
            sim_titles: RwSignal::new(String::new()),
            sim_descriptions: RwSignal::new(String::new()),
            sim: RwSignal::new(None),
            sim_status: RwSignal::new(None),
            sim_running: RwSignal::new(false),
            examples: RwSignal::new(None),
            bench: RwSignal::new(None),
        }
    }

    fn ready(&self) -> bool {
        matches!(self.model.get(), ModelState::Ready(_))
    }

    fn entity_types(&self) -> Vec<String> {
        match self.model.get_untracked() {
            ModelState::Ready(info) => info.entity_types,
            _ => Vec::new(),
        }
    }
}

/// The page's entry point.
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

fn window() -> web_sys::Window {
    web_sys::window().expect("a window")
}

fn now() -> f64 {
    window().performance().map(|p| p.now()).unwrap_or_default()
}

/// The value of `key` in the page's query string.
fn query_param(key: &str) -> Option<String> {
    let search = window().location().search().ok()?;
    search
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=').map(String::from))
}

fn bench_mode() -> bool {
    query_param("bench").as_deref() == Some("1")
}

/// Workers that tag in parallel: `?workers=N` (1-8), else one per core up to two. Each holds its
/// own copy of the model in memory, so more would cost memory on phones; two were measured (on a
/// 2-core machine).
fn worker_count() -> usize {
    query_param("workers")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n.clamp(1, 8))
        .unwrap_or_else(|| (window().navigator().hardware_concurrency() as usize).clamp(1, 2))
}

async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

/// A small same-origin GET from the page; `None` for anything but a 200 that is not HTML.
async fn fetch_text(url: &str) -> Result<Option<String>, String> {
    let init = web_sys::RequestInit::new();
    init.set_cache(web_sys::RequestCache::NoStore);
    let response: web_sys::Response = JsFuture::from(window().fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| format!("{e:?}"))?
        .unchecked_into();
    if !response.ok() || crate::fetch::is_html(&response) {
        return Ok(None);
    }
    let text = JsFuture::from(response.text().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(text.as_string())
}

fn start_worker(state: AppState) {
    let on_event = move |message: FromWorker| match message {
        FromWorker::Ready => {}
        FromWorker::Progress {
            slot: Slot::Main,
            file,
            loaded,
            total,
            from_cache,
        } => state.model.set(ModelState::Loading {
            file,
            loaded,
            total,
            from_cache,
        }),
        FromWorker::Progress {
            slot: Slot::Baseline,
            file,
            loaded,
            total,
            ..
        } if file == "model.gguf" => state
            .baseline
            .set(BaselineState::Loading(Some((loaded, total)))),
        FromWorker::Loaded {
            slot: Slot::Main,
            info,
        } => {
            state.load_ms.set(Some(now()));
            state.taggers.set(1);
            if let Some(pool) = pool() {
                pool.start_helpers(move || state.taggers.update(|n| *n += 1));
            }
            state.model.set(ModelState::Ready(info));
            spawn_local(look_for_baseline(state));
        }
        FromWorker::Loaded {
            slot: Slot::Baseline,
            ..
        } => state.baseline.set(BaselineState::Ready),
        FromWorker::LoadFailed {
            slot: Slot::Main,
            error,
        } => state.model.set(ModelState::Failed(error)),
        FromWorker::LoadFailed {
            slot: Slot::Baseline,
            error,
        } => state.baseline.set(BaselineState::Failed(error.message)),
        _ => {}
    };
    let on_crash = move |message: String| {
        state.model.set(ModelState::Crashed(message));
        state.run.update(|r| r.running = false);
        state.sim_running.set(false);
    };
    match WorkerPool::spawn(WORKER_SCRIPT, worker_count(), on_event, on_crash) {
        Ok(pool) => pool.primary().send(&ToWorker::Load {
            slot: Slot::Main,
            base_url: Slot::Main.dir().into(),
        }),
        Err(message) => state.model.set(ModelState::Crashed(message)),
    }
}

/// Offers the baseline side by side when `model-baseline/manifest.json` is served.
async fn look_for_baseline(state: AppState) {
    let url = format!("{}/manifest.json", Slot::Baseline.dir());
    if let Ok(Some(text)) = fetch_text(&url).await {
        if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
            state.baseline.set(BaselineState::Available);
        }
    }
}

fn ensure_baseline_loading(state: AppState) {
    if state.baseline.get_untracked() == BaselineState::Available {
        if let Some(pool) = pool() {
            state.baseline.set(BaselineState::Loading(None));
            pool.primary().send(&ToWorker::Load {
                slot: Slot::Baseline,
                base_url: Slot::Baseline.dir().into(),
            });
        }
    }
}

async fn load_examples(state: AppState) -> Result<Vec<Example>, String> {
    if let Some(done) = state.examples.get_untracked() {
        return done;
    }
    let url = format!("{}/examples.json", Slot::Main.dir());
    let result = match fetch_text(&url).await {
        Ok(Some(text)) => serde_json::from_str::<Vec<Example>>(&text)
            .map_err(|e| format!("{url} is not a list of {{title, description}}: {e}")),
        Ok(None) => Err(format!("{url} is not there; `trainer export` writes it")),
        Err(e) => Err(format!("could not fetch {url}: {e}")),
    };
    state.examples.set(Some(result.clone()));
    result
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// Tagging

fn run_tagging(state: AppState) {
    let parsed = parse_lines(&state.tag_input.get_untracked(), MAX_TITLES);
    let generation = state.generation.get_untracked() + 1;
    state.generation.set(generation);
    state.rows.set(Vec::new());
    if let Some(url) = state.download_url.get_untracked() {
        let _ = web_sys::Url::revoke_object_url(&url);
        state.download_url.set(None);
    }
    let titles = parsed.titles;
    state.run.set(TagRun {
        total: titles.len(),
        dropped: parsed.dropped,
        running: !titles.is_empty(),
        ..TagRun::default()
    });
    if titles.is_empty() {
        return;
    }
    spawn_local(async move {
        let Some(pool) = pool() else { return };
        let started = now();
        let lengths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
        // One batch open per worker; replies come back in batch order.
        let requests = batch_order(&lengths, BATCH_SIZE, SORT_WINDOW)
            .into_iter()
            .map(|batch| {
                let texts: Vec<String> = batch.iter().map(|&i| titles[i].clone()).collect();
                let pool = pool.clone();
                async move { (batch, pool.tag(texts, BATCH_SIZE).await) }
            });
        let mut replies = futures_util::stream::iter(requests).buffered(pool.size());
        while let Some((batch, reply)) = replies.next().await {
            if state.generation.get_untracked() != generation {
                return;
            }
            match reply {
                Ok((results, ms)) => {
                    if state.generation.get_untracked() != generation {
                        return;
                    }
                    let per_title = ms / results.len().max(1) as f64;
                    let count = results.len();
                    state.rows.update(|rows| {
                        for (&index, result) in batch.iter().zip(results) {
                            let at = rows.partition_point(|r| r.index < index);
                            rows.insert(
                                at,
                                Arc::new(Row {
                                    index,
                                    result,
                                    ms: per_title,
                                }),
                            );
                        }
                    });
                    state.run.update(|r| {
                        r.done += count;
                        r.worker_ms += ms;
                        r.wall_ms = now() - started;
                    });
                }
                Err(error) => {
                    state.run.update(|r| {
                        r.running = false;
                        r.error = Some(error);
                    });
                    return;
                }
            }
        }
        state.run.update(|r| {
            r.running = false;
            r.wall_ms = now() - started;
        });
        let results: Vec<TaggedTitle> = state
            .rows
            .with_untracked(|rows| rows.iter().map(|r| r.result.clone()).collect());
        state.download_url.set(jsonl_url(&to_jsonl(&results)));
    });
}

fn jsonl_url(text: &str) -> Option<String> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/x-ndjson");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).ok()?;
    web_sys::Url::create_object_url_with_blob(&blob).ok()
}

// ---------------------------------------------------------------------------------------------
// Similarity

fn run_similarity(state: AppState) {
    let titles: Vec<String> =
        parse_lines(&state.sim_titles.get_untracked(), MAX_SIMILARITY_ITEMS).titles;
    let descriptions: Vec<String> = parse_lines(
        &state.sim_descriptions.get_untracked(),
        MAX_SIMILARITY_ITEMS,
    )
    .titles;
    if titles.is_empty() || descriptions.is_empty() {
        state.sim_status.set(Some(
            "Enter at least one title and one description, one per line.".into(),
        ));
        return;
    }
    state.sim_running.set(true);
    state.sim_status.set(Some(format!(
        "Embedding {} titles and {} descriptions…",
        titles.len(),
        descriptions.len()
    )));
    ensure_baseline_loading(state);
    spawn_local(async move {
        let Some(client) = pool().map(|p| p.primary()) else {
            return;
        };
        let mut result = SimResult {
            titles: titles.clone(),
            descriptions: descriptions.clone(),
            panels: Vec::new(),
        };
        match client
            .similarity(Slot::Main, titles.clone(), descriptions.clone())
            .await
        {
            Ok((matrix, ms)) => result.panels.push(SimPanel {
                slot: Slot::Main,
                matrix,
                ms,
            }),
            Err(e) => {
                state
                    .sim_status
                    .set(Some(format!("Similarity failed: {e}")));
                state.sim_running.set(false);
                return;
            }
        }
        state.sim.set(Some(result.clone()));
        // Wait for the baseline when it is on its way, then add its panel.
        let mut waited = 0;
        while matches!(state.baseline.get_untracked(), BaselineState::Loading(_)) && waited < 600 {
            state
                .sim_status
                .set(Some("Loading the baseline model for comparison…".into()));
            sleep(200).await;
            waited += 1;
        }
        if state.baseline.get_untracked() == BaselineState::Ready {
            match client
                .similarity(Slot::Baseline, titles.clone(), descriptions.clone())
                .await
            {
                Ok((matrix, ms)) => {
                    result.panels.push(SimPanel {
                        slot: Slot::Baseline,
                        matrix,
                        ms,
                    });
                    state.sim.set(Some(result));
                }
                Err(e) => state
                    .sim_status
                    .set(Some(format!("Baseline similarity failed: {e}"))),
            }
        }
        if let BaselineState::Failed(e) = state.baseline.get_untracked() {
            state
                .sim_status
                .set(Some(format!("The baseline model could not be loaded: {e}")));
        } else {
            state.sim_status.set(None);
        }
        state.sim_running.set(false);
    });
}

// ---------------------------------------------------------------------------------------------
// Benchmark mode (?bench=1): `window.multitagBench(titles, batchSize)` resolves to a JSON string.

fn install_bench_hook() {
    let hook = Closure::<dyn Fn(JsValue, JsValue) -> js_sys::Promise>::new(
        |titles: JsValue, batch: JsValue| {
            let titles: Vec<String> = js_sys::Array::from(&titles)
                .iter()
                .filter_map(|v| v.as_string())
                .collect();
            let batch = batch.as_f64().unwrap_or(BATCH_SIZE as f64).max(1.0) as usize;
            wasm_bindgen_futures::future_to_promise(async move {
                let report = bench(titles, batch)
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
    hook.forget();
}

async fn bench(titles: Vec<String>, batch: usize) -> Result<serde_json::Value, String> {
    let pool = pool().ok_or("the worker is not running")?;
    let started = now();
    let mut worker_ms = 0.0;
    let mut entities = 0;
    // The tag view's batching (similar lengths together, windows of SORT_WINDOW) and its
    // concurrency: one request open per worker.
    let lengths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    let requests = batch_order(&lengths, batch, SORT_WINDOW)
        .into_iter()
        .map(|indices| {
            let chunk: Vec<String> = indices.iter().map(|&i| titles[i].clone()).collect();
            let pool = pool.clone();
            async move { pool.tag(chunk, batch).await }
        });
    let mut replies = futures_util::stream::iter(requests).buffered(pool.size());
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
        "length_sorted_window": SORT_WINDOW,
        "entities": entities,
        "wall_ms": wall_ms,
        // Summed over the workers: with several, it exceeds the wall time.
        "worker_ms": worker_ms,
        "titles_per_s": if wall_ms > 0.0 { n * 1000.0 / wall_ms } else { 0.0 },
        "worker_titles_per_s": if worker_ms > 0.0 { n * 1000.0 / worker_ms } else { 0.0 },
    }))
}

async fn bench_pasted(state: AppState) {
    let titles = parse_lines(&state.tag_input.get_untracked(), MAX_TITLES).titles;
    if titles.is_empty() {
        state.bench.set(Some("Paste some titles first.".into()));
        return;
    }
    state.bench.set(Some("Running…".into()));
    let mut reports = Vec::new();
    for batch in [1, BATCH_SIZE] {
        match bench(titles.clone(), batch).await {
            Ok(r) => reports.push(r),
            Err(e) => {
                state.bench.set(Some(format!("Benchmark failed: {e}")));
                return;
            }
        }
    }
    let report = serde_json::json!({
        "load_ms": state.load_ms.get_untracked(),
        "runs": reports,
    });
    state.bench.set(Some(
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    ));
}

// ---------------------------------------------------------------------------------------------
// Views

#[component]
fn App() -> impl IntoView {
    let state = AppState::new();
    provide_context(state);
    start_worker(state);
    let bench = bench_mode();
    if bench {
        install_bench_hook();
    }
    let tab_button = move |tab: Tab, id: &'static str, label: &'static str| {
        view! {
            <button
                id=id
                role="tab"
                class="tab"
                class:active=move || state.tab.get() == tab
                aria-selected=move || (state.tab.get() == tab).to_string()
                on:click=move |_| {
                    state.tab.set(tab);
                    if tab == Tab::Similarity {
                        ensure_baseline_loading(state);
                    }
                }
            >
                {label}
            </button>
        }
    };
    view! {
        <header class="topbar">
            <div class="brand">
                <span class="logo" aria-hidden="true">"◆"</span>
                <div>
                    <h1>"multitag"</h1>
                    <p class="tagline">"Product-title entity tagging, entirely in your browser"</p>
                </div>
            </div>
            <ModelStatus/>
        </header>
        <nav class="tabs" role="tablist">
            {tab_button(Tab::Tag, "tab-tag", "Tag titles")}
            {tab_button(Tab::Similarity, "tab-similarity", "Title ↔ description")}
        </nav>
        <main>
            <ModelErrorPanel/>
            <TagView bench=bench/>
            <SimilarityView/>
        </main>
        <footer class="footer">
            "Multi-task triplet NER (BERT + title/description triplet loss). The model runs in a Web Worker on your device; nothing you paste leaves this page."
        </footer>
    }
}

#[component]
fn ModelStatus() -> impl IntoView {
    let state = expect_context::<AppState>();
    let data_state = move || match state.model.get() {
        ModelState::Starting => "starting",
        ModelState::Loading { .. } => "loading",
        ModelState::Ready(_) => "ready",
        ModelState::Failed(_) | ModelState::Crashed(_) => "failed",
    };
    let ready_info = move || match state.model.get() {
        ModelState::Ready(info) => Some(info),
        _ => None,
    };
    let body = move || match state.model.get() {
        ModelState::Starting => {
            view! { <span class="dot pending"></span> "Starting the model worker…" }.into_any()
        }
        ModelState::Loading {
            file,
            loaded,
            total,
            from_cache,
        } => {
            let label = match total {
                Some(t) => format!("{} / {}", format_bytes(loaded), format_bytes(t)),
                None => format_bytes(loaded),
            };
            let source = if from_cache { " (from cache)" } else { "" };
            view! {
                <span class="dot pending"></span>
                <span class="loading-text">{format!("Loading {file}{source}: {label}")}</span>
                <progress
                    id="load-progress"
                    max=total.unwrap_or(0).max(1).to_string()
                    value=loaded.to_string()
                ></progress>
            }
            .into_any()
        }
        ModelState::Ready(info) => {
            let quant = info
                .quantization()
                .map(|q| format!(" · {q}"))
                .unwrap_or_default();
            let source = if info.from_cache() {
                "from cache"
            } else {
                "downloaded"
            };
            let load = state
                .load_ms
                .get()
                .map(|ms| format!(" in {}", format_ms(ms)))
                .unwrap_or_default();
            view! {
                <span class="dot ok"></span>
                {format!(
                    "Model ready{quant} · {} {source}{load}",
                    format_bytes(info.total_bytes()),
                )}
            }
            .into_any()
        }
        ModelState::Failed(_) | ModelState::Crashed(_) => {
            view! { <span class="dot bad"></span> "Model not loaded" }.into_any()
        }
    };
    view! {
        <div
            id="model-status"
            class="model-status"
            role="status"
            data-state=data_state
            data-load-ms=move || state.load_ms.get().map(|v| format!("{v:.1}")).unwrap_or_default()
            data-bytes=move || ready_info().map(|i| i.total_bytes().to_string()).unwrap_or_default()
            data-from-cache=move || ready_info().map(|i| i.from_cache().to_string()).unwrap_or_default()
            data-fetch-ms=move || ready_info().map(|i| format!("{:.1}", i.fetch_ms)).unwrap_or_default()
            data-parse-ms=move || ready_info().map(|i| format!("{:.1}", i.parse_ms)).unwrap_or_default()
            data-workers=move || state.taggers.get().to_string()
            data-pool-size=move || pool().map(|p| p.size()).unwrap_or(0).to_string()
        >
            {body}
        </div>
    }
}

#[component]
fn ModelErrorPanel() -> impl IntoView {
    let state = expect_context::<AppState>();
    move || {
        let (headline, detail, kind) = match state.model.get() {
            ModelState::Failed(error) => {
                let headline = match error.kind {
                    LoadErrorKind::Missing => "The model files are missing.",
                    LoadErrorKind::Corrupt => "The model files could not be read.",
                    LoadErrorKind::Network => "The model files could not be fetched.",
                };
                let kind = match error.kind {
                    LoadErrorKind::Missing => "missing",
                    LoadErrorKind::Corrupt => "corrupt",
                    LoadErrorKind::Network => "network",
                };
                (headline, error.message, kind)
            }
            ModelState::Crashed(message) => ("The model worker stopped.", message, "crashed"),
            _ => return None,
        };
        Some(view! {
            <section id="model-error" class="card error-panel" role="alert" data-kind=kind>
                <h2>{headline}</h2>
                <p>
                    "This page needs an exported model next to it: "
                    <code>"model/manifest.json"</code> ", " <code>"model/model.gguf"</code> " and "
                    <code>"model/tokenizer.json"</code> " (and " <code>"model/examples.json"</code>
                    " for the examples)."
                </p>
                <p class="error-detail"><code>{detail}</code></p>
                <p>"Make them from the repository root with:"</p>
                <pre class="commands"><code>{MAKE_MODEL_COMMANDS}</code></pre>
                <p>
                    "then rebuild with " <code>"trunk build --release"</code> " (or let "
                    <code>"trunk serve"</code> " pick them up) and reload this page."
                </p>
            </section>
        })
    }
}

#[component]
fn Legend() -> impl IntoView {
    let state = expect_context::<AppState>();
    move || {
        let ModelState::Ready(info) = state.model.get() else {
            return None;
        };
        let types = info.entity_types.clone();
        Some(view! {
            <div id="legend" class="legend" aria-label="Entity types">
                {types
                    .iter()
                    .map(|t| {
                        let class = format!("ent {}", label_class(t, &types));
                        view! {
                            <span class=class data-label=t.clone()>
                                <span class="ent-label">{t.clone()}</span>
                            </span>
                        }
                    })
                    .collect_view()}
            </div>
        })
    }
}

fn result_row(row: Arc<Row>, types: &[String]) -> impl IntoView {
    let result = &row.result;
    let parts = segments(&result.title, &result.entities)
        .into_iter()
        .map(|segment| match segment.entity {
            None => view! { <span class="plain">{segment.text}</span> }.into_any(),
            Some(i) => {
                let e = &result.entities[i];
                let class = format!("ent {}", label_class(&e.label, types));
                view! {
                    <mark
                        class=class
                        data-label=e.label.clone()
                        data-start=e.start.to_string()
                        data-end=e.end.to_string()
                        data-score=format!("{:.4}", e.score)
                        title=format!("{} · score {:.3} · chars {}–{}", e.label, e.score, e.start, e.end)
                    >
                        <span class="ent-text">{segment.text}</span>
                        <span class="ent-label">{e.label.clone()}</span>
                    </mark>
                }
                .into_any()
            }
        })
        .collect_view();
    let truncated = result.truncated.then(|| {
        view! {
            <span
                class="truncated-notice"
                title="The model reads at most 48 sub-words of a title; the words after the cut are not tagged."
            >
                "⚠ truncated: only the first 48 sub-words were read"
            </span>
        }
    });
    view! {
        <li
            class="result"
            class:truncated=result.truncated
            data-index=row.index.to_string()
            data-entities=result.entities.len().to_string()
        >
            <span class="index">{(row.index + 1).to_string()}</span>
            <div class="title-text">{parts}</div>
            <div class="meta">
                {truncated}
                <span class="ms" title="Worker time for this title's batch, divided by the batch size">
                    {format_ms(row.ms)}
                </span>
            </div>
        </li>
    }
}

#[component]
fn TagView(bench: bool) -> impl IntoView {
    let state = expect_context::<AppState>();
    let fill_examples = move |_| {
        spawn_local(async move {
            match load_examples(state).await {
                Ok(examples) => {
                    let text = examples
                        .iter()
                        .take(MAX_TITLES)
                        .map(|e| one_line(&e.title))
                        .collect::<Vec<_>>()
                        .join("\n");
                    state.tag_input.set(text);
                }
                Err(e) => state.run.update(|r| r.error = Some(e)),
            }
        })
    };
    let summary = move || {
        let run = state.run.get();
        if run.total == 0 && run.error.is_none() {
            return "Paste titles above and press “Tag titles”.".to_string();
        }
        let mut s = if run.running {
            format!("Tagging… {} of {} titles", run.done, run.total)
        } else {
            format!("Tagged {} titles", run.done)
        };
        if run.done > 0 {
            s.push_str(&format!(
                " · total {} ({} in the model, {} per title)",
                format_ms(run.wall_ms),
                format_ms(run.worker_ms),
                format_ms(run.worker_ms / run.done as f64)
            ));
        }
        if run.dropped > 0 {
            s.push_str(&format!(
                " · {} lines past the first {MAX_TITLES} were not tagged",
                run.dropped
            ));
        }
        if let Some(e) = run.error {
            s.push_str(&format!(" · error: {e}"));
        }
        s
    };
    let has_download = move || state.download_url.get().is_some();
    view! {
        <section id="tag-view" class="view" class:hidden=move || state.tab.get() != Tab::Tag>
            <div class="card">
                <label for="titles-input" class="field-label">
                    "Product titles, one per line (up to 5,000)"
                </label>
                <textarea
                    id="titles-input"
                    rows="8"
                    spellcheck="false"
                    placeholder="Roadster Men Navy Blue Slim Fit Checked Casual Shirt\nDKNY Unisex Black & Grey Printed Medium Trolley Bag"
                    prop:value=move || state.tag_input.get()
                    on:input=move |ev| state.tag_input.set(event_target_value(&ev))
                ></textarea>
                <div class="actions">
                    <button
                        id="tag-button"
                        class="primary"
                        prop:disabled=move || !state.ready() || state.run.get().running
                        on:click=move |_| run_tagging(state)
                    >
                        "Tag titles"
                    </button>
                    <button
                        id="tag-examples"
                        prop:disabled=move || !state.ready()
                        on:click=fill_examples
                    >
                        "Load examples"
                    </button>
                    <button
                        id="tag-clear"
                        on:click=move |_| {
                            state.generation.update(|g| *g += 1);
                            state.tag_input.set(String::new());
                            state.rows.set(Vec::new());
                            state.run.set(TagRun::default());
                        }
                    >
                        "Clear"
                    </button>
                    <a
                        id="download-jsonl"
                        class="button"
                        class:disabled=move || !has_download()
                        aria-disabled=move || (!has_download()).to_string()
                        href=move || state.download_url.get().unwrap_or_default()
                        download="multitag-tags.jsonl"
                    >
                        "Download JSONL"
                    </a>
                    {bench
                        .then(|| {
                            view! {
                                <button
                                    id="bench-button"
                                    prop:disabled=move || !state.ready()
                                    on:click=move |_| spawn_local(bench_pasted(state))
                                >
                                    "Benchmark (batch 1 and 32)"
                                </button>
                            }
                        })}
                </div>
                <p
                    id="tag-summary"
                    class="summary"
                    data-done=move || state.run.get().done.to_string()
                    data-total=move || state.run.get().total.to_string()
                    data-running=move || state.run.get().running.to_string()
                >
                    {summary}
                </p>
                {move || state.bench.get().map(|b| view! { <pre id="bench-output" class="bench">{b}</pre> })}
            </div>
            <Legend/>
            <ol id="results" class="results">
                <For
                    each=move || state.rows.get()
                    key=|row| row.index
                    children=move |row| result_row(row, &state.entity_types())
                />
            </ol>
        </section>
    }
}

fn heatmap(panel: &SimPanel, titles: &[String], descriptions: &[String], ms: f64) -> impl IntoView {
    let matrix = &panel.matrix;
    let best = best_matches(matrix);
    let (lo, hi) = matrix_range(matrix);
    let wins = diagonal_wins(matrix);
    let square = titles.len() == descriptions.len();
    let show_numbers = descriptions.len() <= 16;
    let slot = match panel.slot {
        Slot::Main => "main",
        Slot::Baseline => "baseline",
    };
    let caption = if square {
        format!(
            "best match is the title's own description for {wins} of {} titles",
            titles.len()
        )
    } else {
        format!(
            "{} titles × {} descriptions",
            titles.len(),
            descriptions.len()
        )
    };
    let head = descriptions
        .iter()
        .enumerate()
        .map(|(j, d)| {
            view! {
                <th scope="col" class="col-head" title=d.clone()>
                    {format!("D{}", j + 1)}
                </th>
            }
        })
        .collect_view();
    let body = matrix
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let cells = row
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    let is_best = best[i] == Some(j);
                    let class = match (is_best, i == j && square) {
                        (true, true) => "cell best diag",
                        (true, false) => "cell best",
                        (false, true) => "cell diag",
                        (false, false) => "cell",
                    };
                    let style = format!(
                        "background:{};color:{}",
                        heat_color(v, lo, hi),
                        if heat_is_dark(v, lo, hi) {
                            "#fff"
                        } else {
                            "#1d2733"
                        }
                    );
                    let hover = format!(
                        "T{} × D{}: cosine {v:.3}{}",
                        i + 1,
                        j + 1,
                        if is_best { " (best match)" } else { "" }
                    );
                    view! {
                        <td
                            class=class
                            data-row=i.to_string()
                            data-col=j.to_string()
                            data-sim=format!("{v:.4}")
                            title=hover
                            style=style
                        >
                            {show_numbers.then(|| format!("{v:.2}"))}
                        </td>
                    }
                })
                .collect_view();
            let title = titles.get(i).cloned().unwrap_or_default();
            let hover = title.clone();
            view! {
                <tr data-row=i.to_string()>
                    <th scope="row" class="row-head" title=hover>
                        <span class="row-num">{format!("T{}", i + 1)}</span>
                        <span class="row-title">{title}</span>
                    </th>
                    {cells}
                </tr>
            }
        })
        .collect_view();
    view! {
        <figure class="heatmap-panel" data-slot=slot>
            <figcaption>
                <strong>{panel.slot.title()}</strong>
                <span class="caption-detail">{format!(" · {caption} · {}", format_ms(ms))}</span>
            </figcaption>
            <div class="heatmap-scroll">
                <table
                    class="heatmap"
                    data-slot=slot
                    data-rows=titles.len().to_string()
                    data-cols=descriptions.len().to_string()
                    data-diagonal-wins=wins.to_string()
                >
                    <thead>
                        <tr>
                            <th class="corner">"title \\ description"</th>
                            {head}
                        </tr>
                    </thead>
                    <tbody>{body}</tbody>
                </table>
            </div>
        </figure>
    }
}

#[component]
fn SimilarityView() -> impl IntoView {
    let state = expect_context::<AppState>();
    let fill_examples = move |_| {
        spawn_local(async move {
            match load_examples(state).await {
                Ok(examples) => {
                    let chosen: Vec<&Example> = examples.iter().take(SIMILARITY_EXAMPLES).collect();
                    state.sim_titles.set(
                        chosen
                            .iter()
                            .map(|e| one_line(&e.title))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    );
                    state.sim_descriptions.set(
                        chosen
                            .iter()
                            .map(|e| one_line(&e.description))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    );
                    run_similarity(state);
                }
                Err(e) => state.sim_status.set(Some(e)),
            }
        })
    };
    let baseline_note = move || match state.baseline.get() {
        BaselineState::Absent => {
            "Export a plain fine-tuned model to public/model-baseline to compare it side by side."
                .to_string()
        }
        BaselineState::Available => {
            "A baseline model is available and will be shown side by side.".into()
        }
        BaselineState::Loading(Some((loaded, total))) => format!(
            "Loading the baseline: {}{}",
            format_bytes(loaded),
            total
                .map(|t| format!(" / {}", format_bytes(t)))
                .unwrap_or_default()
        ),
        BaselineState::Loading(None) => "Loading the baseline…".into(),
        BaselineState::Ready => {
            "Baseline loaded: triplet-trained and baseline side by side.".into()
        }
        BaselineState::Failed(e) => format!("The baseline could not be loaded: {e}"),
    };
    let panels = move || {
        state.sim.get().map(|result| {
            result
                .panels
                .iter()
                .map(|p| heatmap(p, &result.titles, &result.descriptions, p.ms))
                .collect_view()
        })
    };
    let descriptions_list = move || {
        state.sim.get().map(|result| {
            view! {
                <ol class="desc-list">
                    {result
                        .descriptions
                        .iter()
                        .enumerate()
                        .map(|(j, d)| {
                            view! {
                                <li>
                                    <span class="row-num">{format!("D{}", j + 1)}</span>
                                    " "
                                    {d.clone()}
                                </li>
                            }
                        })
                        .collect_view()}
                </ol>
            }
        })
    };
    view! {
        <section
            id="similarity-view"
            class="view"
            class:hidden=move || state.tab.get() != Tab::Similarity
        >
            <div class="card">
                <p class="hint">
                    "Titles on the left, descriptions on the right, one per line. Each cell is the cosine similarity of a title's and a description's sentence embeddings (mean-pooled, as the triplet loss trains them); the outlined cell is each title's best match."
                </p>
                <div class="two-col">
                    <div>
                        <label for="sim-titles" class="field-label">"Titles"</label>
                        <textarea
                            id="sim-titles"
                            rows="7"
                            spellcheck="false"
                            prop:value=move || state.sim_titles.get()
                            on:input=move |ev| state.sim_titles.set(event_target_value(&ev))
                        ></textarea>
                    </div>
                    <div>
                        <label for="sim-descriptions" class="field-label">"Descriptions"</label>
                        <textarea
                            id="sim-descriptions"
                            rows="7"
                            spellcheck="false"
                            prop:value=move || state.sim_descriptions.get()
                            on:input=move |ev| state.sim_descriptions.set(event_target_value(&ev))
                        ></textarea>
                    </div>
                </div>
                <div class="actions">
                    <button
                        id="sim-run"
                        class="primary"
                        prop:disabled=move || !state.ready() || state.sim_running.get()
                        on:click=move |_| run_similarity(state)
                    >
                        "Compare"
                    </button>
                    <button
                        id="sim-examples"
                        prop:disabled=move || !state.ready() || state.sim_running.get()
                        on:click=fill_examples
                    >
                        "Load examples"
                    </button>
                    <span id="baseline-note" class="note">{baseline_note}</span>
                </div>
                <p
                    id="sim-status"
                    class="summary"
                    data-running=move || state.sim_running.get().to_string()
                >
                    {move || state.sim_status.get()}
                </p>
            </div>
            <div id="heatmaps" class="heatmaps">{panels}</div>
            {descriptions_list}
        </section>
    }
}
