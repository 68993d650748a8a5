//! Model directories on disk: a Hugging Face BERT directory (config.json, model.safetensors,
//! tokenizer.json) plus, for our trained models, labels.json and training.json. Reading checks
//! every file up front; writing is [`crate::output`]'s.
//!
//! A trained directory is also a Hugging Face `BertForTokenClassification` directory (its
//! config.json names the architecture and the tags, `id2label`), and a token classifier written
//! by transformers, without labels.json, is read with the tags of its `id2label` in their row
//! order (`O` need not come first).
//!
//! A directory written by `trainer export` (model.gguf, tokenizer.json, manifest.json) is read too:
//! when it has a `model.gguf` and no `model.safetensors`, config and labels come from the GGUF
//! metadata and [`ModelDir::predictor`] loads the (possibly quantized) weights (a relation model's
//! types and settings are in its metadata too, read by `crate::relations::model::load_extractor`).
//! Such a directory can be evaluated and used for tagging, not trained from or exported again.
//!
//! Any of the three gives sentence embeddings ([`ModelDir::embedder`]): a base encoder's plain
//! encoder, a trained or exported model's fine-tuned one.
//!
//! The method a trained model is for ([`TaskKind`]) is `training.json`'s `task`, or the GGUF
//! file's `multitag.task`; a model without one is a tagging model.
//!
//! The files are checked against each other, so that a mismatch is an error rather than a model
//! that tags wrong: every tensor of the weights must be used by the model config.json describes
//! (checked where the weights are loaded: [`ModelDir::trainable`], [`ModelDir::predictor`]);
//! labels.json must follow the IOB2 scheme, have one tag per classifier row and, when
//! training.json records its hash (`labels_sha256`, [`multitag_model::gguf::labels_sha256`]),
//! match it (models trained before the hash was recorded are accepted without it). An export's
//! files are checked by [`GgufFile::read`] against the checksums in their metadata.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use multitag_core::LabelMap;
use multitag_model::error::printable;
use multitag_model::gguf::labels_sha256;
use multitag_model::{
    nn::weights, predictor_from_gguf, predictor_from_tensors, BertConfig, DenseCompute, Embedder,
    EncoderEmbedder, GgufFile, ModelError, NerModel, Predictor, TaskKind, WordTokenizer,
};

/// How a directory stores its weights.
pub enum WeightsFormat {
    /// `model.safetensors` (float; a base model or a trained one): its bytes.
    Safetensors(Vec<u8>),
    /// `model.gguf` written by `trainer export` (f32, f16 or block-quantized), parsed once when
    /// the directory is read.
    Gguf(GgufFile<'static>),
}

pub struct ModelDir {
    pub path: PathBuf,
    pub config: BertConfig,
    pub config_text: String,
    pub tokenizer_bytes: Vec<u8>,
    pub weights: WeightsFormat,
    /// Present for a trained tagger, absent for a base encoder.
    pub labels: Option<LabelMap>,
    /// The method a trained model was trained for.
    pub task: TaskKind,
    /// The split it was trained on, as training.json records it.
    pub split: TrainedSplit,
}

/// What a directory says of the split its model was trained on (`training.json`'s `split`).
pub enum TrainedSplit {
    /// No training.json: a base encoder, an export or another tool's model.
    NotRecorded,
    /// A training.json from before splits were recorded.
    Unknown,
    Recorded(serde_json::Value),
}

fn read_required(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{}: missing {name}; a model directory needs config.json, model.safetensors and tokenizer.json \
             (fetch the base model with `trainer fetch-model`), an exported one model.gguf and tokenizer.json",
            dir.display()
        );
    }
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

impl ModelDir {
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!(
                "{}: not a directory (run `trainer fetch-model` for the base model)",
                dir.display()
            );
        }
        if !dir.join("model.safetensors").is_file() && dir.join("model.gguf").is_file() {
            return Self::read_export(dir);
        }
        let config_bytes = read_required(dir, "config.json")?;
        let config_source = dir.join("config.json").display().to_string();
        let config_text = String::from_utf8(config_bytes)
            .with_context(|| format!("{config_source}: not UTF-8"))?;
        let config = BertConfig::from_json(&config_source, &config_text)?;
        let tokenizer_bytes = read_required(dir, "tokenizer.json")?;
        let weights_bytes = read_required(dir, "model.safetensors")?;
        let training = read_training(&dir.join("training.json"))?;
        let labels_path = dir.join("labels.json");
        let config_labels = id2label(&config_source, &config_text, &weights_bytes)?;
        let labels = if labels_path.is_file() {
            let labels = read_labels(&labels_path)?;
            check_head_rows(&labels, &labels_path, dir, &weights_bytes)?;
            if let Some(recorded) = &training.labels_sha256 {
                if labels_sha256(&labels) != *recorded {
                    bail!(
                        "{}: the tags do not match the hash training.json records for them \
                         (field `labels_sha256`): labels.json was edited, reordered or replaced \
                         since training; restore it or train again",
                        labels_path.display()
                    );
                }
            }
            if config_labels.as_ref().is_some_and(|c| *c != labels) {
                bail!(
                    "{}: the tags differ from config.json's `id2label`; one of the two was edited \
                     or replaced",
                    labels_path.display()
                );
            }
            Some(labels)
        } else if let Some(labels) = config_labels {
            // A token classifier written by Hugging Face transformers: its tags are in config.json.
            check_head_rows(&labels, &dir.join("config.json"), dir, &weights_bytes)?;
            Some(labels)
        } else {
            None
        };
        Ok(Self {
            path: dir.to_path_buf(),
            config,
            config_text,
            tokenizer_bytes,
            weights: WeightsFormat::Safetensors(weights_bytes),
            labels,
            task: training.task,
            split: training.split,
        })
    }

    /// An exported directory: `model.gguf` (config and labels in its metadata) and tokenizer.json.
    fn read_export(dir: &Path) -> Result<Self> {
        let tokenizer_bytes = read_required(dir, "tokenizer.json")?;
        let weights_bytes = read_required(dir, "model.gguf")?;
        let source = dir.join("model.gguf").display().to_string();
        let file = GgufFile::read(&source, weights_bytes)?;
        let config = file.config()?;
        let config_text = file
            .metadata_str(multitag_model::gguf::KEY_CONFIG)?
            .to_string();
        let task = TaskKind::of_gguf(&file)?;
        // A relation model has no tags: its types are in its own metadata (read by its loader).
        let labels = match task {
            TaskKind::Tagging => Some(file.labels()?),
            TaskKind::Relations | TaskKind::Binder => None,
        };
        Ok(Self {
            path: dir.to_path_buf(),
            config,
            config_text,
            tokenizer_bytes,
            weights: WeightsFormat::Gguf(file),
            labels,
            task,
            split: TrainedSplit::NotRecorded,
        })
    }

    /// The bytes of `model.safetensors`; fails for an exported (GGUF) directory, which can only
    /// be used for inference.
    pub fn require_safetensors(&self, what: &str) -> Result<&[u8]> {
        match &self.weights {
            WeightsFormat::Safetensors(bytes) => Ok(bytes),
            WeightsFormat::Gguf(_) => bail!(
                "{}: an exported model (model.gguf) cannot be used to {what}; use the trained model \
                 directory with model.safetensors",
                self.path.display()
            ),
        }
    }

    fn source(&self, file: &str) -> String {
        self.path.join(file).display().to_string()
    }

    pub fn tokenizer(&self) -> Result<WordTokenizer> {
        Ok(WordTokenizer::from_bytes(
            &self.source("tokenizer.json"),
            &self.tokenizer_bytes,
        )?)
    }

    /// Trainable variables initialised from this directory's weights; parameters the checkpoint
    /// lacks (a new head) get a seeded normal(0, 0.02) init so a CPU run is reproducible.
    pub fn trainable(
        &self,
        labels: &LabelMap,
        device: &Device,
        seed: u64,
        tagging_layers: usize,
    ) -> Result<(VarMap, NerModel)> {
        let config = self.trained_config(tagging_layers)?;
        self.trainable_model(&config, device, seed, &[], |vb| {
            NerModel::load(&config, labels.clone(), vb)
        })
    }

    /// Any task's model over this directory's encoder, as `build` makes it from a `VarBuilder`
    /// of fresh variables (the encoder under `bert.`, as `config` describes it), then filled from
    /// this directory's weights. Layers `config` has beyond this directory's (a tagger's own)
    /// start as copies of its top layer; what no checkpoint tensor fills (a task's head) gets a
    /// seeded normal(0, 0.02) init, so a CPU run is reproducible.
    ///
    /// `encoder_copies`: prefixes under which the model holds more encoders started from the same
    /// pretrained weights (BINDER's `type_encoder`).
    pub fn trainable_model<M>(
        &self,
        config: &BertConfig,
        device: &Device,
        seed: u64,
        encoder_copies: &[&str],
        build: impl FnOnce(VarBuilder) -> candle_core::Result<M>,
    ) -> Result<(VarMap, M)> {
        let bytes = self.require_safetensors("train from")?;
        let varmap = VarMap::new();
        let model = build(VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        let source = self.source("model.safetensors");
        let mut tensors = weights::load_safetensors(&source, bytes, device)?;
        // The tagger's own layers start as copies of the top pretrained layer: pretrained weights
        // that already read the states below them, where random ones would first have to learn to.
        let top = format!("bert.encoder.layer.{}.", self.config.num_hidden_layers - 1);
        let copies: Vec<(String, Tensor)> = (tensors.iter())
            .filter_map(|(name, t)| Some((name.strip_prefix(&top)?.to_string(), t.clone())))
            .collect();
        for layer in self.config.num_hidden_layers..config.num_hidden_layers {
            for (rest, t) in &copies {
                tensors.insert(format!("bert.encoder.layer.{layer}.{rest}"), t.copy()?);
            }
        }
        for prefix in encoder_copies {
            let copies: Vec<(String, Tensor)> = (tensors.iter())
                .filter_map(|(name, t)| Some((name.strip_prefix("bert.")?.to_string(), t.clone())))
                .collect();
            for (rest, t) in copies {
                tensors.insert(format!("{prefix}.{rest}"), t.copy()?);
            }
        }
        let assigned = weights::assign_to_varmap(&source, &tensors, &varmap)?;
        let encoders = || {
            std::iter::once("bert.".to_string())
                .chain(encoder_copies.iter().map(|p| format!("{p}.")))
        };
        if let Some(name) =
            (assigned.missing.iter()).find(|n| encoders().any(|p| n.starts_with(&p)))
        {
            bail!("{source}: missing encoder tensor `{name}`");
        }
        // Training from a config that says fewer layers than the checkpoint has would silently
        // drop the pretrained layers beyond it.
        if !assigned.unused.is_empty() {
            return Err(ModelError::unused_tensors(
                &source,
                &self.source("config.json"),
                self.config.num_hidden_layers,
                &assigned.unused,
            )
            .into());
        }
        crate::init::seeded_init(&varmap, &assigned.missing, seed)?;
        Ok((varmap, model))
    }

    /// The config a model trained from this one has: `tagging_layers` more layers, above the
    /// embedding depth, which stays where it is.
    pub fn trained_config(&self, tagging_layers: usize) -> Result<BertConfig> {
        if tagging_layers == 0 {
            return Ok(self.config.clone());
        }
        if self.config.embedding_layers.is_some() {
            bail!(
                "{}: this model already has tagging layers of its own; train from a base encoder",
                self.source("config.json")
            );
        }
        Ok(BertConfig {
            num_hidden_layers: self.config.num_hidden_layers + tagging_layers,
            embedding_layers: Some(self.config.num_hidden_layers),
            ..self.config.clone()
        })
    }

    /// A trained model (a tagger's labels, or a BINDER model's types), not a base encoder.
    pub fn is_trained(&self) -> bool {
        self.labels.is_some() || self.task == TaskKind::Binder
    }

    /// The trained model's predictor (its method's, [`Self::task`]); requires a trained
    /// directory (with labels.json) or an exported one.
    pub fn predictor(&self, device: &Device, compute: DenseCompute) -> Result<Box<dyn Predictor>> {
        if self.task == TaskKind::Binder {
            return Ok(Box::new(crate::binder::load_tagger(self, device, compute)?));
        }
        let labels = self.labels.clone().with_context(|| {
            format!(
                "{}: no labels.json; this is a base encoder, not a trained model",
                self.path.display()
            )
        })?;
        let tokenizer_source = self.source("tokenizer.json");
        Ok(match &self.weights {
            WeightsFormat::Gguf(file) => predictor_from_gguf(
                file,
                &tokenizer_source,
                &self.tokenizer_bytes,
                device,
                compute,
            )?,
            WeightsFormat::Safetensors(bytes) => {
                let source = self.source("model.safetensors");
                let tensors = weights::load_safetensors(&source, bytes, device)?;
                predictor_from_tensors(
                    self.task,
                    &source,
                    &self.config,
                    labels,
                    tensors,
                    self.tokenizer()?,
                    device,
                )?
            }
        })
    }

    /// Runs `encoder` (this directory's text encoder, under `bert.`: a predictor's or a relation
    /// model's) on the first GPU adapter through wgpu, its weights read again from this directory
    /// (an export's quantized matrices as their codes); the adapter's name and the weights'
    /// size there.
    pub fn encoder_on_gpu(&self, encoder: &mut multitag_model::BertEncoder) -> Result<String> {
        let gpu = std::sync::Arc::new(multitag_gpu::Gpu::blocking()?);
        let config = encoder.config.clone();
        let on_gpu = match &self.weights {
            WeightsFormat::Gguf(file) => {
                multitag_gpu::GpuEncoder::load(gpu, &config, |name, shape| {
                    file.qtensor(&format!("bert.{name}"), shape, &Device::Cpu)
                        .map(multitag_gpu::Stored::Quantized)
                })
            }
            WeightsFormat::Safetensors(bytes) => {
                let source = self.source("model.safetensors");
                let tensors = weights::load_safetensors(&source, bytes, &Device::Cpu)?;
                multitag_gpu::GpuEncoder::load(gpu, &config, |name, _| {
                    tensors
                        .get(&format!("bert.{name}"))
                        .cloned()
                        .map(multitag_gpu::Stored::Float)
                        .ok_or_else(|| {
                            candle_core::Error::Msg(format!("{source}: no tensor `bert.{name}`"))
                        })
                })
            }
        }
        .with_context(|| format!("{}: the encoder on the GPU", self.path.display()))?;
        let adapter = format!(
            "{}, {:.1} MB of weights",
            on_gpu.gpu().adapter(),
            on_gpu.weight_bytes() as f64 / 1e6
        );
        encoder.set_backend(Some(std::sync::Arc::new(on_gpu)));
        Ok(adapter)
    }

    /// Sentence embeddings from this directory's encoder: a trained or exported model's predictor
    /// (every predictor is an [`Embedder`], with its fine-tuned encoder), or for a base encoder
    /// (no labels.json) the plain encoder. The base weights are checked as a trained model's are:
    /// every tensor must be used, the pooler, pretraining heads and position ids aside
    /// ([`weights::unused_by_design`]).
    pub fn embedder(&self, device: &Device, compute: DenseCompute) -> Result<Box<dyn Embedder>> {
        if self.is_trained() {
            let predictor: Box<dyn Embedder> = self.predictor(device, compute)?;
            return Ok(predictor);
        }
        // An export always carries its labels, so this is a safetensors directory.
        let bytes = self.require_safetensors("embed with")?;
        let source = self.source("model.safetensors");
        let tensors = weights::load_safetensors(&source, bytes, device)?;
        // Said here rather than as an unused tensor: the directory lost a file, its config is fine.
        if tensors.keys().any(|name| name.starts_with("classifier.")) {
            bail!(
                "{}: model.safetensors holds a token classifier (`classifier.*`) but neither a \
                 labels.json beside it nor an `id2label` in config.json: a trained model missing \
                 its labels; restore labels.json",
                self.path.display()
            );
        }
        Ok(Box::new(EncoderEmbedder::from_tensors(
            &source,
            &self.config,
            tensors,
            &self.source("tokenizer.json"),
            self.tokenizer()?,
            device,
        )?))
    }
}

/// What [`ModelDir::read`] takes from a trained model's `training.json`.
struct Training {
    task: TaskKind,
    /// The hash of the tag list the model was trained with, when recorded.
    labels_sha256: Option<String>,
    split: TrainedSplit,
}

/// The `task` and `labels_sha256` of a trained model's `training.json`: a tagging model and no
/// hash when the file or the field is absent (models trained before they were recorded).
fn read_training(path: &Path) -> Result<Training> {
    let mut training = Training {
        task: TaskKind::Tagging,
        labels_sha256: None,
        split: TrainedSplit::NotRecorded,
    };
    if !path.is_file() {
        return Ok(training);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    training.split = match value.get("split") {
        None => TrainedSplit::Unknown,
        Some(split) => TrainedSplit::Recorded(split.clone()),
    };
    match value.get("task") {
        None => {}
        Some(serde_json::Value::String(name)) => {
            training.task = TaskKind::parse(&format!("{}: field `task`", path.display()), name)?;
        }
        Some(other) => bail!(
            "{}: field `task`: expected a string such as \"tagging\", found {other}",
            path.display()
        ),
    }
    match value.get("labels_sha256") {
        None => {}
        Some(serde_json::Value::String(hash))
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            training.labels_sha256 = Some(hash.to_ascii_lowercase());
        }
        Some(_) => bail!(
            "{}: field `labels_sha256`: expected the SHA-256 of labels.json's tags as 64 hex digits",
            path.display()
        ),
    }
    Ok(training)
}

/// labels.json: a `{"labels": [...]}` map following the IOB2 scheme.
fn read_labels(path: &Path) -> Result<LabelMap> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let labels: LabelMap = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a label map", path.display()))?;
    if let Err(why) = labels.check_scheme() {
        bail!("{}: field `labels`: {why}", path.display());
    }
    Ok(labels)
}

/// The tags of a Hugging Face token classifier: config.json's `id2label` (`{"0": "O", "1":
/// "B-PER", ...}`, by classifier row), when the weights have a classifier. A base encoder's config
/// may carry transformers' placeholder `id2label` (`LABEL_0`, `LABEL_1`); without a classifier it
/// is not read.
fn id2label(source: &str, config_text: &str, weights: &[u8]) -> Result<Option<LabelMap>> {
    if classifier_rows(weights).is_none() {
        return Ok(None);
    }
    let config: serde_json::Value =
        serde_json::from_str(config_text).with_context(|| format!("{source}: not JSON"))?;
    let Some(map) = config.get("id2label") else {
        return Ok(None);
    };
    let field = format!("{source}: field `id2label`");
    let Some(map) = map.as_object() else {
        bail!("{field}: expected an object of row number to tag");
    };
    let mut labels = vec![None; map.len()];
    for (key, tag) in map {
        let row = key
            .parse::<usize>()
            .ok()
            .filter(|&r| r < labels.len())
            .with_context(|| {
                format!(
                    "{field}: key {} is not a row number below {}",
                    printable(key, 40),
                    labels.len()
                )
            })?;
        let Some(tag) = tag.as_str() else {
            bail!("{field}: row {row}: expected a tag string");
        };
        labels[row] = Some(tag.to_string());
    }
    let labels = LabelMap {
        labels: labels.into_iter().map(Option::unwrap_or_default).collect(),
    };
    if let Err(why) = labels.check_scheme() {
        bail!("{field}: {why}");
    }
    Ok(Some(labels))
}

/// The number of rows of the weights' classifier, if they have one. Read from the safetensors
/// header only; a header that does not parse is left for the weights' loader to report.
fn classifier_rows(weights: &[u8]) -> Option<usize> {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(weights).ok()?;
    metadata
        .tensors()
        .into_iter()
        .find(|(name, _)| weights::canonical_name(name).as_deref() == Some("classifier.weight"))
        .and_then(|(_, info)| info.shape.first().copied())
}

/// A trained model's classifier has one row per tag of labels.json. Read from the safetensors
/// header only; a header that does not parse is left for the weights' loader to report.
fn check_head_rows(
    labels: &LabelMap,
    labels_path: &Path,
    dir: &Path,
    weights: &[u8],
) -> Result<()> {
    let rows = classifier_rows(weights);
    NerModel::check_head(
        labels,
        &labels_path.display().to_string(),
        rows,
        &dir.join("model.safetensors").display().to_string(),
    )?;
    Ok(())
}
