//! Tasks: one module per method, each a head on the shared encoder ([`crate::models`]) with its
//! loss, its decoding and its data shapes. The training step drives a task through [`Task`];
//! `eval`, `export`, `tag`, `bench` and the browser worker drive a trained one through
//! [`Predictor`], built by [`predictor_from_gguf`] from the task named in the exported file
//! ([`TaskKind`]). A new method is a new module here, a [`TaskKind`] variant and its arm in the
//! loaders, not an edit of the loop or of the commands.
//!
//! | module | method | example | output |
//! |---|---|---|---|
//! | [`tagging`] | multi-task triplet NER (Siskind & Shah): BIO token classification, plus a title/description loss on mean-pooled embeddings | a title's sub-words, tags on first sub-words, its description's sub-words | [`crate::TaggedTitle`] |
//! | [`relations`] | span-based joint entity and relation extraction (SpERT; SpERT.MT's multi-task, IoU and enriched-input additions as switches) | a sentence's sub-words with each word's range, its gold entities and relations | entities and relations per sentence (`multitag_core::relations::Decoded`) |
//!
//! The interface was written from the tagging task and checked against the two methods planned
//! next, so that each fits without changing it:
//! - **SpERT.MT** (span-based joint entity and relation extraction): its example is a sentence's
//!   sub-words with gold entity spans and relations; the negative spans and pairs it samples per
//!   step come from the `draw` generator [`Task::loss`] is given (as tagging's in-batch negatives
//!   do), so runs stay seeded; its losses are named parts (entity, relation, and the multi-task
//!   auxiliaries) of one total, as [`Losses`] carries them; its output is entities and relations.
//! - **BINDER** (bi-encoder NER): a second encoder for entity-type descriptions lives inside its
//!   task model (both are [`crate::BertEncoder`]s loaded from the same base), the type vectors
//!   are computed once per type set by its predictor; its loss parts are start, end, span and
//!   threshold.
//!
//! Both output entities with character offsets, as [`Predictor::extract`] returns them (SpERT.MT
//! adds its relations to that output), and both can be scored against word-level gold tags
//! ([`Predictor::predict_tags`]: spans written as IOB2) and give sentence embeddings from the
//! shared encoder ([`Embedder::embed`], which every [`Predictor`] is).
//!
//! Embeddings alone need no method: [`Embedder`] is the interface `trainer embed` and
//! `trainer match` hold, which a trained model's predictor and a plain base encoder
//! ([`embedding`]) both implement through the one pooling code ([`embedding::embed_texts`]).
//!
//! Where parameters come from is the same for every task: [`crate::nn::Weights`] at the task's
//! name prefix (trainable variables, or an exported GGUF file).
use std::collections::HashMap;

use candle_core::{Device, Result, Tensor};
use multitag_core::{LabelMap, TaggedTitle};

use crate::config::BertConfig;
use crate::error::ModelError;
use crate::gguf::{GgufFile, KEY_TASK};
use crate::nn::weights::{ReadLog, TrackedTensors};
use crate::nn::{DenseCompute, Mode};
use crate::tokenize::WordTokenizer;

pub mod binder;
pub mod embedding;
pub mod relations;
pub mod tagging;

/// The loss of one training batch: the `total` the optimizer minimises and its named `parts`
/// (each before its weight), which the training loop averages per epoch and logs by name.
pub struct Losses {
    pub total: Tensor,
    pub parts: Vec<(&'static str, Tensor)>,
}

/// A method's training side: the loss of a batch of its examples on the model it holds.
pub trait Task {
    /// One training item, tokenized: what batches are made of.
    type Example;

    /// The names of [`Losses::parts`], in order, for logs (every batch gives all of them).
    fn loss_parts(&self) -> &'static [&'static str];

    /// The loss of the examples at `batch` (indices into `examples`, which the method may also
    /// sample from, e.g. another item's description). `draw(n)` gives a uniform integer in
    /// `0..n` from the training loop's seeded generator, for whatever the method samples per step
    /// (negatives), so a CPU run is reproducible for a seed. `mode` is training (dropout) or
    /// inference (the same loss without dropout).
    fn loss(
        &self,
        examples: &[Self::Example],
        batch: &[usize],
        draw: &mut dyn FnMut(usize) -> usize,
        mode: &Mode,
    ) -> Result<Losses>;
}

/// The method a model was trained for: stored in an exported file (`multitag.task`) and a trained
/// model directory (`training.json`'s `task`), it picks the predictor that reads the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// [`tagging`]: token classification with the description losses.
    Tagging,
    /// [`relations`]: span-based joint entity and relation extraction (SpERT, SpERT.MT).
    Relations,
    /// [`binder`]: bi-encoder NER against entity types described in words (BINDER).
    Binder,
}

impl TaskKind {
    pub const ALL: [TaskKind; 3] = [TaskKind::Tagging, TaskKind::Relations, TaskKind::Binder];

    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Tagging => "tagging",
            TaskKind::Relations => "relations",
            TaskKind::Binder => "binder",
        }
    }

    /// The task called `name`; `source` (the file and field it came from) names it in the error.
    pub fn parse(source: &str, name: &str) -> std::result::Result<Self, ModelError> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
                // The name comes from the file: escaped and cut, as every quote of file content.
                ModelError::Task(format!(
                    "{source}: `{}` is not a task this build knows ({}); the model was \
                     written by a newer or another program",
                    crate::error::printable(name, 40),
                    known.join(", ")
                ))
            })
    }

    /// The task of an exported file; files written before the key existed are tagging models.
    pub fn of_gguf(file: &GgufFile) -> std::result::Result<Self, ModelError> {
        match file.metadata_opt_str(KEY_TASK)? {
            Some(name) => Self::parse(&format!("{}: {KEY_TASK}", file.source()), name),
            None => Ok(TaskKind::Tagging),
        }
    }
}

/// Sentence embeddings from an encoder: what `trainer embed` and `trainer match` need, and all a
/// plain base encoder (no labels, no head: [`embedding::EncoderEmbedder`]) can give. Every
/// trained model is one too ([`Predictor`]'s supertrait), with its fine-tuned encoder.
pub trait Embedder {
    /// The model's own cut, in sub-words: a tagger's title length, a plain encoder's
    /// [`crate::DEFAULT_TEXT_TOKENS`]. For a predictor texts are cut here and the cut is reported
    /// per text ([`TaggedTitle::truncated`]); [`Embedder::embed`] takes its own.
    fn max_tokens(&self) -> usize;

    /// L2-normalised sentence embeddings from the encoder, `(texts, hidden)`, each text cut at
    /// `max_tokens`, in batches of `batch_size`: mean-pooled over the real sub-words as training
    /// pools them ([`crate::BertEncoder::embed`]), so a matmul gives cosine similarities.
    fn embed(
        &self,
        texts: &[&str],
        max_tokens: usize,
        batch_size: usize,
    ) -> std::result::Result<Tensor, ModelError>;
}

/// A trained method's inference side: texts in, the method's outputs out. Every command and the
/// browser worker that uses a trained model holds a `dyn Predictor`, so none of them knows
/// which method it drives. Its embeddings ([`Embedder`]) come from the shared encoder.
pub trait Predictor: Embedder {
    fn task(&self) -> TaskKind;

    /// The entity types the model outputs, e.g. `BRAND`.
    fn entity_types(&self) -> Vec<String>;

    /// Entities of raw texts, in batches of `batch_size`; character offsets index the strings.
    fn extract(
        &self,
        texts: &[&str],
        batch_size: usize,
    ) -> std::result::Result<Vec<TaggedTitle>, ModelError>;

    /// IOB2 tags of pre-split texts, one per word: how a gold set of tagged words is scored
    /// (`multitag_core::evaluate`).
    fn predict_tags(
        &self,
        words: &[Vec<&str>],
        batch_size: usize,
    ) -> std::result::Result<Vec<Vec<String>>, ModelError>;

    /// The encoder that reads the input texts, so that its inference can run elsewhere
    /// ([`crate::BertEncoder::set_backend`]); `None` where the model is borrowed.
    fn text_encoder_mut(&mut self) -> Option<&mut crate::BertEncoder> {
        None
    }
}

/// The predictor of an exported model: the method named in its metadata ([`TaskKind::of_gguf`]),
/// with the tokenizer's bytes (`tokenizer_source` names them in errors). Reads no files, so this
/// is also the browser's loader. The file's checksums were checked when it was read
/// ([`GgufFile::read`]); every tensor in it must be used by the model its config describes.
pub fn predictor_from_gguf(
    file: &GgufFile,
    tokenizer_source: &str,
    tokenizer_json: &[u8],
    device: &Device,
    compute: DenseCompute,
) -> std::result::Result<Box<dyn Predictor>, ModelError> {
    file.check_tokenizer(tokenizer_source, tokenizer_json)?;
    let predictor: Box<dyn Predictor> = match TaskKind::of_gguf(file)? {
        TaskKind::Tagging => Box::new(tagging::Tagger::from_gguf_file(
            file,
            tokenizer_source,
            tokenizer_json,
            device,
            compute,
        )?),
        TaskKind::Relations => return Err(not_a_tagger(file.source())),
        TaskKind::Binder => Box::new(binder::BinderTagger::from_gguf(
            file,
            tokenizer_source,
            tokenizer_json,
            device,
            compute,
        )?),
    };
    // Each task's loader checks this already (the tagging one does); checked here again so that
    // a new task's loader cannot forget it.
    file.check_every_tensor_read(&file.config()?)?;
    Ok(predictor)
}

/// A relation extraction model read where a [`Predictor`] is asked for: it is driven through
/// [`relations::SpanExtractor`] instead (entities and relations, not tags).
fn not_a_tagger(source: &str) -> ModelError {
    ModelError::Task(format!(
        "{source}: a relation extraction model (task `relations`), read by the relation \
         commands (`trainer eval`/`tag` on its directory), not a tagger"
    ))
}

/// An exported file of `task`'s: an error naming the file and the task it holds otherwise (`how`
/// says how to make one of `task`), its tokenizer checked against the file's checksum before it is
/// parsed; its config.
pub(crate) fn open_export(
    file: &GgufFile,
    task: TaskKind,
    how: &str,
    tokenizer_source: &str,
    tokenizer_json: &[u8],
) -> std::result::Result<BertConfig, ModelError> {
    let held = TaskKind::of_gguf(file)?;
    if held != task {
        return Err(ModelError::Task(format!(
            "{}: a {} model, not a {} one ({how})",
            file.source(),
            held.name(),
            task.name()
        )));
    }
    file.check_tokenizer(tokenizer_source, tokenizer_json)?;
    file.config()
}

/// A task's JSON metadata `key` of an exported file, parsed.
pub(crate) fn metadata_json<T: serde::de::DeserializeOwned>(
    file: &GgufFile,
    key: &str,
) -> std::result::Result<T, ModelError> {
    serde_json::from_str(file.metadata_str(key)?).map_err(|e| {
        ModelError::Config(format!(
            "{}: {key}: {}",
            file.source(),
            crate::error::printable(&e.to_string(), 200)
        ))
    })
}

/// Every tensor of the checkpoint `source` was read by the model `config` describes, or they
/// disagree. A safetensors checkpoint's config is `config.json` beside it (Hugging Face's layout).
pub(crate) fn check_all_read(
    source: &str,
    config: &BertConfig,
    log: &ReadLog,
) -> std::result::Result<(), ModelError> {
    let unused = log.unused();
    if unused.is_empty() {
        return Ok(());
    }
    let config_source = std::path::Path::new(source)
        .with_file_name("config.json")
        .display()
        .to_string();
    Err(ModelError::unused_tensors(
        source,
        &config_source,
        config.num_hidden_layers,
        &unused,
    ))
}

/// The predictor of a trained model's float weights (`tensors` under Hugging Face names, as a
/// checkpoint stores them; `source` names the file in errors), for the method `task`. Every
/// tensor must be used by the model `config` describes (the checkpoint's unused-by-design tensors
/// were dropped when it was read, [`crate::nn::weights::load_safetensors`]).
pub fn predictor_from_tensors(
    task: TaskKind,
    source: &str,
    config: &BertConfig,
    labels: LabelMap,
    tensors: HashMap<String, Tensor>,
    tokenizer: WordTokenizer,
    device: &Device,
) -> std::result::Result<Box<dyn Predictor>, ModelError> {
    let in_source = |e: candle_core::Error| ModelError::Weights(format!("{source}: {e}"));
    let predictor: Box<dyn Predictor> = match task {
        TaskKind::Tagging => {
            let head_rows = tensors
                .get("classifier.weight")
                .and_then(|t| t.dims().first().copied());
            tagging::NerModel::check_head(&labels, "the label list", head_rows, source)?;
            let (vb, log) = TrackedTensors::var_builder(tensors, device);
            let model = tagging::NerModel::load(config, labels, vb).map_err(in_source)?;
            check_all_read(source, config, &log)?;
            Box::new(tagging::Tagger::new(model, tokenizer, device.clone()))
        }
        TaskKind::Relations => return Err(not_a_tagger(source)),
        // Its types' descriptions are not among these arguments.
        TaskKind::Binder => {
            return Err(ModelError::Task(format!(
                "{source}: a BINDER model is read with its type descriptions \
                 (binder::BinderTagger::from_tensors)"
            )))
        }
    };
    Ok(predictor)
}

/// Runs `f` on one of rayon's worker threads rather than the caller's. The kernels fan out to
/// those workers; between kernels they spin before sleeping, and on a machine with as many workers
/// as cores the spinning competes with a caller thread for the cores.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn on_worker_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn on_worker_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    f()
}
