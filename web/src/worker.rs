//! The Web Worker that owns the model: it fetches the exported files (with progress, through the
//! Cache API), builds the predictor the GGUF file's task names (`multitag_model::predictor_from_gguf`,
//! as `trainer tag` does) or, for the relation slot, the span extractor
//! (`SpanExtractor::from_gguf`, as `trainer tag` of a relation export does), and answers tagging,
//! similarity, embedding and relation requests, so the page never blocks on inference.
use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::Device;
use multitag_model::tasks::binder::BinderTagger;
use multitag_model::tasks::relations::SpanExtractor;
use multitag_model::{
    predictor_from_gguf, DenseCompute, Embedder, GgufFile, ModelError, Predictor, TaskKind,
    DEFAULT_TEXT_TOKENS,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::fetch::{fetch_cached, fetch_fresh, forget};
use crate::gpu;
use crate::protocol::{
    decode, encode, FileInfo, FromWorker, LoadError, LoadErrorKind, ModelInfo, Slot, TextKind,
    ToWorker,
};
use crate::view::fnv1a;

/// Batch size for embeddings in the similarity view (heat map and search).
const EMBED_BATCH: usize = 16;

#[derive(Default)]
struct Models {
    main: Option<Box<dyn Predictor>>,
    baseline: Option<Box<dyn Predictor>>,
    relations: Option<Box<SpanExtractor>>,
    binder: Option<Box<BinderTagger>>,
    /// Where each loaded model came from (loaded again to move it to the GPU).
    bases: HashMap<Slot, String>,
}

impl Models {
    /// Stores what a load built in its slot (`load` checked that the model's task is the slot's).
    fn store(&mut self, slot: Slot, loaded: Loaded, base_url: &str) {
        match (slot, loaded) {
            (Slot::Main, Loaded::Predictor(p)) => self.main = Some(p),
            (Slot::Baseline, Loaded::Predictor(p)) => self.baseline = Some(p),
            (Slot::Relations, Loaded::Relations(r)) => self.relations = Some(r),
            (Slot::Binder, Loaded::Binder(b)) => self.binder = Some(b),
            _ => return,
        }
        self.bases.insert(slot, base_url.to_string());
    }

    /// The tagging predictor of `slot` (the main model or the baseline).
    fn predictor(&self, slot: Slot) -> Result<&dyn Predictor, String> {
        match slot {
            Slot::Main => self.main.as_deref(),
            Slot::Baseline => self.baseline.as_deref(),
            // Relation and BINDER requests have their own messages.
            Slot::Relations | Slot::Binder => None,
        }
        .ok_or_else(|| format!("the {} model is not loaded", slot.title()))
    }
}

/// What a load built: a tagger's predictor, a relation model's extractor, or a BINDER model
/// (which takes types described at tag time).
enum Loaded {
    Predictor(Box<dyn Predictor>),
    Relations(Box<SpanExtractor>),
    Binder(Box<BinderTagger>),
}

impl Loaded {
    /// The encoder that reads the input texts, which can move to the GPU.
    fn text_encoder_mut(&mut self) -> Option<&mut multitag_model::BertEncoder> {
        match self {
            Loaded::Predictor(p) => p.text_encoder_mut(),
            Loaded::Binder(b) => b.text_encoder_mut(),
            Loaded::Relations(r) => Some(&mut r.model.encoder),
        }
    }
}

/// Every model's encoder back on the CPU (the GPU path fell back, or the page chose the CPU).
pub fn detach_all() {
    MODELS.with(|m| {
        let mut m = m.borrow_mut();
        let Models {
            main,
            baseline,
            binder,
            relations,
            ..
        } = &mut *m;
        let predictors = [main.as_deref_mut(), baseline.as_deref_mut()]
            .into_iter()
            .flatten()
            .chain(binder.as_deref_mut().map(|b| b as &mut dyn Predictor));
        let encoders = predictors
            .filter_map(|p| p.text_encoder_mut())
            .chain(relations.as_deref_mut().map(|r| &mut r.model.encoder));
        for encoder in encoders {
            encoder.set_backend(None);
        }
    });
}

thread_local! {
    static MODELS: RefCell<Models> = RefCell::new(Models::default());
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn now() -> f64 {
    scope().performance().map(|p| p.now()).unwrap_or_default()
}

fn post(message: &FromWorker) {
    let _ = scope().post_message(&JsValue::from_str(&encode(message)));
}

/// The worker's entry point: listen, look for WebGPU, then tell the page what it found and that
/// we are ready (the page sends nothing before, so every load comes after the probe).
pub fn start() {
    console_error_panic_hook::set_once();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        let Some(text) = event.data().as_string() else {
            return;
        };
        match decode::<ToWorker>(&text) {
            Ok(message) => handle(message),
            Err(e) => web_sys::console::error_1(&JsValue::from_str(&e)),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    wasm_bindgen_futures::spawn_local(async {
        gpu::probe().await;
        post(&FromWorker::Backend { info: gpu::info() });
        post(&FromWorker::Ready);
    });
}

/// Tells the page what the worker runs on now (after a change or a fallback).
fn post_backend() {
    post(&FromWorker::Backend { info: gpu::info() });
}

/// Loads `slot` from `base_url` and stores it (moved to the GPU when that is the backend); the
/// page sees its progress when `shown`.
async fn load_and_store(slot: Slot, base_url: &str, shown: bool) -> Result<ModelInfo, LoadError> {
    let (loaded, info, held) = load(slot, base_url, shown).await?;
    MODELS.with(|m| m.borrow_mut().store(slot, loaded, base_url));
    drop(held);
    Ok(info)
}

fn handle(message: ToWorker) {
    match message {
        ToWorker::Load { slot, base_url } => wasm_bindgen_futures::spawn_local(async move {
            match load_and_store(slot, &base_url, true).await {
                Ok(info) => post(&FromWorker::Loaded { slot, info }),
                Err(error) => post(&FromWorker::LoadFailed { slot, error }),
            }
        }),
        ToWorker::DestroyGpuDevice => gpu::destroy_device(),
        ToWorker::SetBackend { backend } => wasm_bindgen_futures::spawn_local(async move {
            if gpu::set_backend(backend).await {
                // The models loaded so far move to the GPU: loaded again (from the cache), as
                // a load on the GPU backend does.
                let bases: Vec<(Slot, String)> = MODELS.with(|m| {
                    let m = m.borrow();
                    m.bases.iter().map(|(s, b)| (*s, b.clone())).collect()
                });
                for (slot, base_url) in bases {
                    if let Err(e) = load_and_store(slot, &base_url, false).await {
                        gpu::set_notice(format!(
                            "the {} model stays on the CPU: {}",
                            slot.title(),
                            e.message
                        ));
                    }
                }
            }
            post_backend();
        }),
        ToWorker::Relations {
            id,
            texts,
            batch_size,
        } => answer(
            id,
            async move {
                in_batches(Slot::Relations, &texts, batch_size, |m, refs| {
                    m.relations
                        .as_ref()
                        .ok_or("the relation extraction model is not loaded")?
                        .extract_texts(refs, batch_size)
                        .map_err(|e| e.to_string())
                })
                .await
            },
            move |results, ms| FromWorker::Relations { id, results, ms },
        ),
        ToWorker::TagDescribed {
            id,
            titles,
            batch_size,
            described,
        } => answer(
            id,
            async move {
                in_batches(Slot::Binder, &titles, batch_size, |m, refs| {
                    let tagger = m.binder.as_mut().ok_or("the BINDER model is not loaded")?;
                    tagger
                        .set_described(&described)
                        .and_then(|()| tagger.extract(refs, batch_size))
                        .map_err(|e| e.to_string())
                })
                .await
            },
            move |results, ms| FromWorker::Tagged { id, results, ms },
        ),
        ToWorker::Tag {
            id,
            titles,
            batch_size,
        } => answer(
            id,
            async move {
                in_batches(Slot::Main, &titles, batch_size, |m, refs| {
                    m.predictor(Slot::Main)?
                        .extract(refs, batch_size)
                        .map_err(|e| e.to_string())
                })
                .await
            },
            move |results, ms| FromWorker::Tagged { id, results, ms },
        ),
        ToWorker::Similarity {
            id,
            slot,
            titles,
            descriptions,
        } => answer(
            id,
            async move { similarity(slot, &titles, &descriptions).await },
            move |matrix, ms| FromWorker::Similarity {
                id,
                slot,
                matrix,
                ms,
            },
        ),
        ToWorker::Embed {
            id,
            slot,
            texts,
            kind,
        } => answer(
            id,
            async move { embed(slot, &texts, kind).await },
            move |vectors, ms| FromWorker::Embedded { id, vectors, ms },
        ),
    }
}

/// Runs `work` without holding up the worker's other messages, and posts its answer: `reply`
/// with the milliseconds it took, or `Failed`.
fn answer<T: 'static>(
    id: u64,
    work: impl std::future::Future<Output = Result<T, String>> + 'static,
    reply: impl FnOnce(T, f64) -> FromWorker + 'static,
) {
    wasm_bindgen_futures::spawn_local(async move {
        let start = now();
        let outcome = work.await;
        post(&match outcome {
            Ok(value) => reply(value, now() - start),
            Err(message) => FromWorker::Failed { id, message },
        })
    })
}

/// `predict` over `texts` in batches of `batch_size`, the results in order: one encoder batch a
/// call, on the GPU when `slot`'s encoder is there (`gpu::run`, which needs one batch a call:
/// `multitag_gpu::staged`), else here, batched the same way.
async fn in_batches<T>(
    slot: Slot,
    texts: &[String],
    batch_size: usize,
    mut predict: impl FnMut(&mut Models, &[&str]) -> Result<Vec<T>, String>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(batch_size.max(1)) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let batch = gpu::run(
            slot,
            || MODELS.with(|m| predict(&mut m.borrow_mut(), &refs)),
            post_backend,
        )
        .await?;
        out.extend(batch);
    }
    Ok(out)
}

/// `matrix[i][j]` = cosine(title i, description j), from the model's L2-normalised embeddings.
async fn similarity(
    slot: Slot,
    titles: &[String],
    descriptions: &[String],
) -> Result<Vec<Vec<f32>>, String> {
    if titles.is_empty() || descriptions.is_empty() {
        return Ok(vec![Vec::new(); titles.len()]);
    }
    let te = embed(slot, titles, TextKind::Title).await?;
    let de = embed(slot, descriptions, TextKind::Description).await?;
    Ok(te
        .iter()
        .map(|t| {
            de.iter()
                .map(|d| t.iter().zip(d).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect())
}

/// The model's L2-normalised sentence embeddings of `texts`, one vector each, cut where `kind`
/// says: the one place both the heat map and the search get their vectors from.
async fn embed(slot: Slot, texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>, String> {
    in_batches(slot, texts, EMBED_BATCH, |m, refs| {
        let predictor = m.predictor(slot)?;
        let max_tokens = match kind {
            TextKind::Title => predictor.max_tokens(),
            TextKind::Description => DEFAULT_TEXT_TOKENS,
        };
        predictor
            .embed(refs, max_tokens, EMBED_BATCH)
            .and_then(|e| Ok(e.to_vec2::<f32>()?))
            .map_err(|e| e.to_string())
    })
    .await
}

/// Sends a progress message at most every 256 KiB of a file, and at its start and end (when
/// `shown`: a model loaded again to move to the GPU loads quietly, the page's model stays ready).
fn progress_reporter(
    slot: Slot,
    file: &'static str,
    shown: bool,
) -> impl FnMut(u64, Option<u64>, bool) {
    let mut last = None::<u64>;
    move |loaded, total, from_cache| {
        let done = total == Some(loaded);
        if shown && (last.is_none_or(|l| loaded >= l + 256 * 1024) || done) {
            last = Some(loaded);
            post(&FromWorker::Progress {
                slot,
                file: file.to_string(),
                loaded,
                total,
                from_cache,
            });
        }
    }
}

/// Reads the exported model (already fetched): the one its task names, which must be the slot's;
/// its encoder moves to the GPU when that is the backend (the caller holds `gpu::lock`).
fn build(slot: Slot, gguf: &[u8], tokenizer: &[u8]) -> Result<(Loaded, TaskKind), LoadError> {
    let corrupt = |e: ModelError| {
        // Only the tokenizer's own errors name tokenizer.json.
        let file = if matches!(e, ModelError::Tokenizer(_)) {
            "tokenizer.json"
        } else {
            "model.gguf"
        };
        LoadError {
            kind: LoadErrorKind::Corrupt,
            file: Some(file.to_string()),
            message: e.to_string(),
        }
    };
    let file = GgufFile::read("model.gguf", gguf).map_err(corrupt)?;
    let task = TaskKind::of_gguf(&file).map_err(corrupt)?;
    if task.name() != slot.task() {
        let message = match task {
            TaskKind::Relations => format!(
                "{}/ holds a relation extraction model (task `relations`), not a tagger: the Tag \
                 and Similarity views need a tagger there; export the relation model to \
                 public/relations for the Relations view",
                slot.dir()
            ),
            TaskKind::Tagging | TaskKind::Binder => format!(
                "{}/ holds a model of task `{}`, not the `{}` model this view needs",
                slot.dir(),
                task.name(),
                slot.task()
            ),
        };
        return Err(LoadError {
            kind: LoadErrorKind::WrongTask,
            file: Some("model.gguf".into()),
            message,
        });
    }
    // Int8 weights with integer dot products: WASM SIMD has no fused multiply-add, so this
    // tags faster than the f32 GEMM, which beats candle's quantized matmul (docs/browser.md).
    // A relation model's heads stay f32 (`SpanExtractor::from_gguf`).
    let compute = DenseCompute::Int8;
    let mut loaded = match task {
        TaskKind::Relations => Loaded::Relations(Box::new(
            SpanExtractor::from_gguf(&file, "tokenizer.json", tokenizer, &Device::Cpu, compute)
                .map_err(corrupt)?,
        )),
        TaskKind::Tagging => Loaded::Predictor(
            predictor_from_gguf(&file, "tokenizer.json", tokenizer, &Device::Cpu, compute)
                .map_err(corrupt)?,
        ),
        TaskKind::Binder => Loaded::Binder(Box::new(
            BinderTagger::from_gguf(&file, "tokenizer.json", tokenizer, &Device::Cpu, compute)
                .map_err(corrupt)?,
        )),
    };
    if let Some(encoder) = loaded.text_encoder_mut() {
        gpu::attach(slot, &file, encoder);
    }
    Ok((loaded, task))
}

/// Fetches and builds `slot`'s model; the GPU lock comes back held, for the caller to store the
/// model before a backend change can pass it by.
async fn load(
    slot: Slot,
    base_url: &str,
    shown: bool,
) -> Result<(Loaded, ModelInfo, gpu::Held), LoadError> {
    let base = base_url.trim_end_matches('/');
    let start = now();
    let manifest_bytes = fetch_fresh(&format!("{base}/manifest.json"), "manifest.json").await?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest_bytes).map_err(|e| LoadError {
            kind: LoadErrorKind::Corrupt,
            file: Some("manifest.json".into()),
            message: format!("manifest.json is not valid JSON: {e}"),
        })?;
    let version = format!("{:016x}", fnv1a(&manifest_bytes));
    let gguf_url = format!("{base}/model.gguf");
    let tokenizer_url = format!("{base}/tokenizer.json");
    let gguf = fetch_cached(
        &gguf_url,
        "model.gguf",
        &version,
        progress_reporter(slot, "model.gguf", shown),
    )
    .await?;
    let tokenizer = fetch_cached(
        &tokenizer_url,
        "tokenizer.json",
        &version,
        progress_reporter(slot, "tokenizer.json", shown),
    )
    .await?;
    let fetched = now();
    let held = gpu::lock().await;
    let result = if !gguf.bytes.starts_with(b"GGUF") {
        Err(LoadError {
            kind: LoadErrorKind::Corrupt,
            file: Some("model.gguf".into()),
            message: format!(
                "model.gguf is not a GGUF file ({} bytes, no GGUF magic)",
                gguf.bytes.len()
            ),
        })
    } else {
        // Every ModelError is a Corrupt load, so the page shows its error panel: among them the
        // checksum mismatches `GgufFile::read` reports for damaged weights or edited labels
        // (which would otherwise load and tag wrong), and tensors the config does not use.
        build(slot, &gguf.bytes, &tokenizer.bytes)
    };
    let (loaded, task) = match result {
        Ok(built) => built,
        Err(e) => {
            // Never serve the same unreadable bytes from the cache again.
            if e.kind == LoadErrorKind::Corrupt {
                forget(&gguf_url).await;
                forget(&tokenizer_url).await;
            }
            return Err(e);
        }
    };
    let (entity_types, relation_types, max_tokens) = match &loaded {
        Loaded::Predictor(p) => (p.entity_types(), Vec::new(), p.max_tokens()),
        Loaded::Relations(r) => (
            r.types().entities.iter().map(|t| t.name.clone()).collect(),
            r.types().relations.iter().map(|t| t.name.clone()).collect(),
            r.max_positions(),
        ),
        Loaded::Binder(b) => (b.entity_types(), Vec::new(), b.max_tokens()),
    };
    let info = ModelInfo {
        task: task.name().to_string(),
        entity_types,
        relation_types,
        files: vec![
            FileInfo {
                name: "model.gguf".into(),
                bytes: gguf.bytes.len() as u64,
                from_cache: gguf.from_cache,
            },
            FileInfo {
                name: "tokenizer.json".into(),
                bytes: tokenizer.bytes.len() as u64,
                from_cache: tokenizer.from_cache,
            },
        ],
        max_tokens,
        fetch_ms: fetched - start,
        parse_ms: now() - fetched,
        manifest,
    };
    Ok((loaded, info, held))
}
