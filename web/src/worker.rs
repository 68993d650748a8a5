//! The Web Worker that owns the model: it fetches the exported files (with progress, through the
//! Cache API), builds the predictor the GGUF file's task names (`multitag_model::predictor_from_gguf`,
//! as `trainer tag` does) or, for the relation slot, the span extractor
//! (`SpanExtractor::from_gguf`, as `trainer tag` of a relation export does), and answers tagging,
//! similarity, embedding and relation requests, so the page never blocks on inference.
use std::cell::RefCell;

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
}

/// What a load built: a tagger's predictor, a relation model's extractor, or a BINDER model
/// (which takes types described at tag time).
enum Loaded {
    Predictor(Box<dyn Predictor>),
    Relations(Box<SpanExtractor>),
    Binder(Box<BinderTagger>),
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

/// The worker's entry point: listen, then tell the page we are ready.
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
    post(&FromWorker::Ready);
}

fn handle(message: ToWorker) {
    match message {
        ToWorker::Load { slot, base_url } => wasm_bindgen_futures::spawn_local(async move {
            match load(slot, &base_url).await {
                Ok((loaded, info)) => {
                    MODELS.with(|m| {
                        let mut m = m.borrow_mut();
                        // `load` checked that the model's task is the slot's.
                        match (slot, loaded) {
                            (Slot::Main, Loaded::Predictor(p)) => m.main = Some(p),
                            (Slot::Baseline, Loaded::Predictor(p)) => m.baseline = Some(p),
                            (Slot::Relations, Loaded::Relations(r)) => m.relations = Some(r),
                            (Slot::Binder, Loaded::Binder(b)) => m.binder = Some(b),
                            _ => {}
                        }
                    });
                    post(&FromWorker::Loaded { slot, info });
                }
                Err(error) => post(&FromWorker::LoadFailed { slot, error }),
            }
        }),
        ToWorker::Relations {
            id,
            texts,
            batch_size,
        } => post(&MODELS.with(|m| {
            let m = m.borrow();
            let Some(extractor) = m.relations.as_ref() else {
                return FromWorker::Failed {
                    id,
                    message: "the relation extraction model is not loaded".into(),
                };
            };
            let start = now();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            match extractor.extract_texts(&refs, batch_size) {
                Ok(results) => FromWorker::Relations {
                    id,
                    results,
                    ms: now() - start,
                },
                Err(e) => FromWorker::Failed {
                    id,
                    message: e.to_string(),
                },
            }
        })),
        ToWorker::TagDescribed {
            id,
            titles,
            batch_size,
            described,
        } => post(&MODELS.with(|m| {
            let mut m = m.borrow_mut();
            let Some(tagger) = m.binder.as_mut() else {
                return FromWorker::Failed {
                    id,
                    message: "the BINDER model is not loaded".into(),
                };
            };
            let start = now();
            let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
            let tagged = tagger
                .set_described(&described)
                .and_then(|()| tagger.extract(&refs, batch_size));
            match tagged {
                Ok(results) => FromWorker::Tagged {
                    id,
                    results,
                    ms: now() - start,
                },
                Err(e) => FromWorker::Failed {
                    id,
                    message: e.to_string(),
                },
            }
        })),
        ToWorker::Tag {
            id,
            titles,
            batch_size,
        } => post(&with_model(Slot::Main, id, |predictor| {
            let start = now();
            let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
            let results = predictor
                .extract(&refs, batch_size)
                .map_err(|e| e.to_string())?;
            let ms = now() - start;
            Ok(FromWorker::Tagged { id, results, ms })
        })),
        ToWorker::Similarity {
            id,
            slot,
            titles,
            descriptions,
        } => post(&with_model(slot, id, |predictor| {
            let start = now();
            let matrix =
                similarity(predictor, &titles, &descriptions).map_err(|e| e.to_string())?;
            Ok(FromWorker::Similarity {
                id,
                slot,
                matrix,
                ms: now() - start,
            })
        })),
        ToWorker::Embed {
            id,
            slot,
            texts,
            kind,
        } => post(&with_model(slot, id, |predictor| {
            let start = now();
            // Nothing to embed: answer at once rather than run the encoder on an empty batch.
            let vectors = if texts.is_empty() {
                Vec::new()
            } else {
                embed(predictor, &texts, kind)
                    .and_then(|e| Ok(e.to_vec2::<f32>()?))
                    .map_err(|e| e.to_string())?
            };
            Ok(FromWorker::Embedded {
                id,
                vectors,
                ms: now() - start,
            })
        })),
    }
}

fn with_model(
    slot: Slot,
    id: u64,
    f: impl FnOnce(&dyn Predictor) -> Result<FromWorker, String>,
) -> FromWorker {
    MODELS.with(|m| {
        let m = m.borrow();
        let predictor = match slot {
            Slot::Main => m.main.as_deref(),
            Slot::Baseline => m.baseline.as_deref(),
            // Relation and BINDER requests have their own messages.
            Slot::Relations | Slot::Binder => None,
        };
        match predictor {
            Some(p) => f(p).unwrap_or_else(|message| FromWorker::Failed { id, message }),
            None => FromWorker::Failed {
                id,
                message: format!("the {} model is not loaded", slot.title()),
            },
        }
    })
}

/// `matrix[i][j]` = cosine(title i, description j), from the model's L2-normalised embeddings.
fn similarity(
    predictor: &dyn Predictor,
    titles: &[String],
    descriptions: &[String],
) -> Result<Vec<Vec<f32>>, multitag_model::ModelError> {
    if titles.is_empty() || descriptions.is_empty() {
        return Ok(vec![Vec::new(); titles.len()]);
    }
    let te = embed(predictor, titles, TextKind::Title)?;
    let de = embed(predictor, descriptions, TextKind::Description)?;
    Ok(te.matmul(&de.t()?)?.to_vec2::<f32>()?)
}

/// The model's L2-normalised sentence embeddings of non-empty `texts`, `(texts, hidden)`, cut
/// where `kind` says: the one place both the heat map and the search get their vectors from.
fn embed(
    predictor: &dyn Predictor,
    texts: &[String],
    kind: TextKind,
) -> Result<candle_core::Tensor, multitag_model::ModelError> {
    let max_tokens = match kind {
        TextKind::Title => predictor.max_tokens(),
        TextKind::Description => DEFAULT_TEXT_TOKENS,
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    predictor.embed(&refs, max_tokens, EMBED_BATCH)
}

/// Sends a progress message at most every 256 KiB of a file, and at its start and end.
fn progress_reporter(slot: Slot, file: &'static str) -> impl FnMut(u64, Option<u64>, bool) {
    let mut last = None::<u64>;
    move |loaded, total, from_cache| {
        let done = total == Some(loaded);
        if last.is_none_or(|l| loaded >= l + 256 * 1024) || done {
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

/// Reads the exported model (already fetched): the one its task names, which must be the slot's.
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
    let loaded = match task {
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
    Ok((loaded, task))
}

async fn load(slot: Slot, base_url: &str) -> Result<(Loaded, ModelInfo), LoadError> {
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
        progress_reporter(slot, "model.gguf"),
    )
    .await?;
    let tokenizer = fetch_cached(
        &tokenizer_url,
        "tokenizer.json",
        &version,
        progress_reporter(slot, "tokenizer.json"),
    )
    .await?;
    let fetched = now();
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
    Ok((loaded, info))
}
