//! Exported models in candle's GGUF format: one file with every tensor of a trained
//! [`crate::NerModel`] (Hugging Face names, e.g. `bert.encoder.layer.0.attention.self.query.weight`,
//! `classifier.weight`) and the metadata needed to rebuild it without any other file but the
//! tokenizer:
//!
//! | key | value |
//! |---|---|
//! | `multitag.config` | the model's `config.json` text |
//! | `multitag.labels` | the tag list as JSON, e.g. `["O", "B-BRAND", ...]` |
//! | `multitag.quant` | the requested type (`f32`, `f16`, `q8_0`, `q4k`) |
//! | `multitag.source` | the model directory it was exported from |
//! | `multitag.task` | the method the model was trained for ([`crate::tasks::TaskKind`]), which picks its predictor; files without it are tagging models |
//! | `multitag.tensors_sha256` | SHA-256 of every tensor's name, type, shape and data ([`TensorDigest`]) |
//! | `multitag.labels_sha256` | SHA-256 of the tag list ([`labels_sha256`]; `trainer train` records the same in `training.json`) |
//! | `multitag.config_sha256` | SHA-256 of the `multitag.config` text |
//! | `multitag.tokenizer_sha256` | SHA-256 of the `tokenizer.json` exported beside it, checked before that file is parsed ([`GgufFile::check_tokenizer`]) |
//! | `multitag.types` | relation models: the entity and relation types, as a SpERT types file; BINDER models: the trained types and their descriptions (`multitag_core::binder::to_json`) |
//! | `multitag.span_model` | relation models: the span model's settings and its decoding (`crate::tasks::relations::extractor::SpanModelSettings`) |
//! | `multitag.binder` | BINDER models: its settings (`crate::tasks::binder::BinderSettings`) |
//! | `multitag.task_sha256` | SHA-256 of the task's own keys above ([`TASK_KEYS`], [`task_metadata_sha256`]) |
//!
//! A tagging model has `multitag.labels` (its tags); a relation model has none (its types are in
//! `multitag.types`).
//! **Integrity.** [`GgufFile::read`] checks each checksum the file has against what it holds, so a
//! flipped byte in the weights or a label list edited in the metadata is a load error naming the
//! file, not a model that silently tags wrong. Files exported before the keys existed have none
//! and load unchecked. The checksums detect damage and accidental edits, not tampering: whoever
//! edits the file can rewrite them. Reading the 17.8 MB q4k demo export with its checksum takes
//! ~12 ms natively (x86 with SHA extensions) and ~150-170 ms in WebAssembly (Node's V8, release
//! build with simd128), first call included.
//!
//! **Storage rule.** Vectors (biases, LayerNorm weights and biases) are always f32. Matrices take
//! the requested type when their row length (last dimension) is a multiple of that type's block
//! size, and otherwise the first type of their fallback chain that fits. The chain depends on the
//! matrix's role: dense-layer weights are multiplied, so they fall back only to types with SIMD
//! dot-product kernels in candle on both x86 AVX and WASM simd128 (q4_0, q8_0, q4k, q6k; not
//! q5_0); lookup tables (`*_embeddings.weight`) are only gathered row by row, so they can take the
//! smaller q5_0.
//!
//! | requested | dense-layer weights | lookup tables | block sizes |
//! |---|---|---|---|
//! | `f32` | f32 | f32 | 1 |
//! | `f16` | f16 | f16 | 1 |
//! | `q8_0` | q8_0, f16 | q8_0, f16 | 32, 1 |
//! | `q4k` | q4k, q8_0, f16 | q4k, q5_0, q8_0, f16 | 256, 32, 32, 1 |
//!
//! For all-MiniLM-L6-v2 (hidden 384, intermediate 1536) under `q4k` that means: the feed-forward
//! output matrices (rows of 1536) are q4k, the other dense matrices (rows of 384) q8_0, the
//! embedding tables q5_0. q4_0 and q5_0 fallbacks for the dense matrices were tried on the demo
//! model and rejected: q4_0 loses more accuracy, and q5_0 (no SIMD kernel) made CPU inference
//! several times slower than q8_0. What each tensor got is recorded in the file itself and
//! returned by [`write_gguf`].
//!
//! Reading ([`GgufFile`]) works on bytes (no file system), so the browser loads the same file with
//! [`crate::tasks::predictor_from_gguf`]. Dense layers are dequantized to f32 at load or, with
//! [`crate::DenseCompute::Quantized`], multiplied with candle's quantized matmul (on CPU it also quantizes
//! each input row to 8 bits); the word-embedding table stays quantized and rows are dequantized as
//! they are looked up; the small position/token-type tables are dequantized to f32 at load.
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::Cursor;
use std::str::FromStr;
use std::sync::Mutex;

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Result as CandleResult, Tensor};
use multitag_core::LabelMap;

use sha2::{Digest, Sha256};

use crate::config::BertConfig;
use crate::error::{printable, ModelError};

pub const KEY_CONFIG: &str = "multitag.config";
pub const KEY_LABELS: &str = "multitag.labels";
pub const KEY_QUANT: &str = "multitag.quant";
pub const KEY_SOURCE: &str = "multitag.source";
pub const KEY_TASK: &str = "multitag.task";
pub const KEY_TENSORS_SHA256: &str = "multitag.tensors_sha256";
pub const KEY_LABELS_SHA256: &str = "multitag.labels_sha256";
pub const KEY_CONFIG_SHA256: &str = "multitag.config_sha256";
pub const KEY_TOKENIZER_SHA256: &str = "multitag.tokenizer_sha256";
pub const KEY_TYPES: &str = "multitag.types";
pub const KEY_SPAN_MODEL: &str = "multitag.span_model";
pub const KEY_BINDER: &str = "multitag.binder";
pub const KEY_TASK_SHA256: &str = "multitag.task_sha256";
/// The metadata a task writes for itself ([`ExportMetadata::task_metadata`]), covered by
/// `multitag.task_sha256`.
pub const TASK_KEYS: [&str; 3] = [KEY_TYPES, KEY_SPAN_MODEL, KEY_BINDER];

/// Errors from the GGUF reader quote what they read (names, counts); at most this many characters
/// of such a message are kept.
const MAX_READER_MESSAGE: usize = 200;

/// The SHA-256 of a tag list, as lower-case hex: over the tags in order, each as its UTF-8 length
/// (u64, little-endian) then its bytes. An export stores it as `multitag.labels_sha256` and
/// `trainer train` as `training.json`'s `labels_sha256`, so a reordered or replaced list (same
/// length, so the classifier's shape cannot tell) is refused on load.
pub fn labels_sha256(labels: &LabelMap) -> String {
    let mut hash = Sha256::new();
    for tag in &labels.labels {
        hash.update((tag.len() as u64).to_le_bytes());
        hash.update(tag.as_bytes());
    }
    hex(&hash.finalize())
}

/// The SHA-256 of a task's own metadata, as lower-case hex: over the [`TASK_KEYS`] `value_of`
/// has, in that order, each as its key and its value (each length-prefixed, u64 little-endian).
pub fn task_metadata_sha256<'v>(value_of: impl Fn(&str) -> Option<&'v str>) -> String {
    let mut hash = Sha256::new();
    for key in TASK_KEYS {
        if let Some(value) = value_of(key) {
            for field in [key, value] {
                hash.update((field.len() as u64).to_le_bytes());
                hash.update(field.as_bytes());
            }
        }
    }
    hex(&hash.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a model's tensors, as stored: fed each tensor in name order with its name, its
/// storage type's name ([`type_name`]), its shape and its bytes (each length-prefixed, u64
/// little-endian), so it covers what a reader builds the model from and nothing of the layout
/// (offsets, padding). Writer and reader feed the same values. SHA-256 from the `sha2` crate
/// (pure Rust; SHA extensions where the CPU has them): ~1.5 GB/s natively, ~230 MB/s in WASM.
pub struct TensorDigest(Sha256);

impl Default for TensorDigest {
    fn default() -> Self {
        Self(Sha256::new())
    }
}

impl TensorDigest {
    /// Adds one tensor; call in name order.
    pub fn add(&mut self, name: &str, dtype: GgmlDType, shape: &[usize], data: &[u8]) {
        let h = &mut self.0;
        for field in [name.as_bytes(), type_name(dtype).as_bytes()] {
            h.update((field.len() as u64).to_le_bytes());
            h.update(field);
        }
        h.update((shape.len() as u64).to_le_bytes());
        for &d in shape {
            h.update((d as u64).to_le_bytes());
        }
        h.update((data.len() as u64).to_le_bytes());
        // In pieces: V8 moves WebAssembly to optimised code between calls, never inside one,
        // so one call over a whole 8 MB table ran in baseline code (measured in Node: ~960 ms
        // for the 18 MB demo export in one call, ~80 ms in 64 KiB pieces). Natively the same.
        for piece in data.chunks(1 << 16) {
            h.update(piece);
        }
    }

    /// The digest as lower-case hex.
    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

/// The weight type asked for at export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    F32,
    F16,
    Q8_0,
    Q4K,
}

impl Quant {
    pub const ALL: [Quant; 4] = [Quant::F32, Quant::F16, Quant::Q8_0, Quant::Q4K];

    pub fn name(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::F16 => "f16",
            Quant::Q8_0 => "q8_0",
            Quant::Q4K => "q4k",
        }
    }

    /// The requested type, then the fallbacks for rows its blocks do not divide.
    pub fn chain(self, role: Role) -> &'static [GgmlDType] {
        match (self, role) {
            (Quant::F32, _) => &[GgmlDType::F32],
            (Quant::F16, _) => &[GgmlDType::F16],
            (Quant::Q8_0, _) => &[GgmlDType::Q8_0, GgmlDType::F16],
            (Quant::Q4K, Role::Dense) => &[GgmlDType::Q4K, GgmlDType::Q8_0, GgmlDType::F16],
            (Quant::Q4K, Role::Table) => &[
                GgmlDType::Q4K,
                GgmlDType::Q5_0,
                GgmlDType::Q8_0,
                GgmlDType::F16,
            ],
        }
    }

    /// The storage type of the tensor `name` with this shape, under the rule in the module doc.
    pub fn storage_type(self, name: &str, shape: &[usize]) -> GgmlDType {
        if shape.len() != 2 {
            return GgmlDType::F32;
        }
        let row = shape[1];
        self.chain(Role::of(name))
            .iter()
            .copied()
            .find(|t| row.is_multiple_of(t.block_size()))
            .unwrap_or(GgmlDType::F32)
    }
}

/// What a matrix is used for, which decides its fallback chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A dense-layer weight, multiplied with the quantized matmul.
    Dense,
    /// An embedding table, only gathered (or dequantized whole at load).
    Table,
}

impl Role {
    pub fn of(name: &str) -> Role {
        if name.ends_with("_embeddings.weight") {
            Role::Table
        } else {
            Role::Dense
        }
    }
}

impl FromStr for Quant {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Quant::F32),
            "f16" => Ok(Quant::F16),
            "q8_0" | "q8" => Ok(Quant::Q8_0),
            "q4k" | "q4_k" => Ok(Quant::Q4K),
            other => Err(ModelError::Config(format!(
                "unknown quantization `{other}` (f32, f16, q8_0 or q4k)"
            ))),
        }
    }
}

impl fmt::Display for Quant {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The lower-case ggml name of a storage type (`q8_0`, `q4k`, `f16`, ...).
pub fn type_name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::F32 => "f32",
        GgmlDType::F16 => "f16",
        GgmlDType::BF16 => "bf16",
        GgmlDType::Q4_0 => "q4_0",
        GgmlDType::Q4_1 => "q4_1",
        GgmlDType::Q5_0 => "q5_0",
        GgmlDType::Q5_1 => "q5_1",
        GgmlDType::Q8_0 => "q8_0",
        GgmlDType::Q8_1 => "q8_1",
        GgmlDType::Q2K => "q2k",
        GgmlDType::Q3K => "q3k",
        GgmlDType::Q4K => "q4k",
        GgmlDType::Q5K => "q5k",
        GgmlDType::Q6K => "q6k",
        GgmlDType::Q8K => "q8k",
    }
}

/// What export stored for one tensor.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredTensor {
    pub name: String,
    pub shape: Vec<usize>,
    /// Storage type, as [`type_name`] spells it.
    #[serde(rename = "type")]
    pub dtype: String,
    pub bytes: usize,
}

/// The metadata written beside the tensors.
pub struct ExportMetadata<'s> {
    /// The `config.json` text (validated before writing).
    pub config_json: &'s str,
    /// A tagger's tags; `None` for a task without (relations, whose types are task metadata).
    pub labels: Option<&'s LabelMap>,
    pub quant: Quant,
    /// Where the model came from (a directory path, for provenance only).
    pub source: &'s str,
    /// The method's name ([`crate::tasks::TaskKind::name`]).
    pub task: &'s str,
    /// The `tokenizer.json` exported beside the file, whose checksum is recorded.
    pub tokenizer_json: Option<&'s [u8]>,
    /// The task's own string metadata (keys from [`TASK_KEYS`]), checksummed together.
    pub task_metadata: &'s [(&'s str, String)],
    /// Tensors whose names start with one of these are stored as f32 whatever `quant` asks for
    /// (a task's small heads, see the exporter for why).
    pub float_prefixes: &'s [&'s str],
}

/// Serialises named float tensors (canonical HF names) to GGUF bytes under the storage rule of the
/// module doc. Tensors are written in name order, so the same model always gives the same bytes.
pub fn write_gguf(
    tensors: &HashMap<String, Tensor>,
    meta: &ExportMetadata,
) -> Result<(Vec<u8>, Vec<StoredTensor>), ModelError> {
    let config = BertConfig::from_json(KEY_CONFIG, meta.config_json)?;
    if let Some(labels) = meta.labels {
        check_labels(KEY_LABELS, labels)?;
    }
    if let Some((key, _)) = meta
        .task_metadata
        .iter()
        .find(|(k, _)| !TASK_KEYS.contains(k))
    {
        return Err(ModelError::Config(format!(
            "task metadata `{key}` is not one of {TASK_KEYS:?}"
        )));
    }
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut stored = Vec::with_capacity(names.len());
    let mut quantized = Vec::with_capacity(names.len());
    let mut digest = TensorDigest::default();
    for name in names {
        let tensor = tensors[name]
            .to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| ModelError::Weights(format!("tensor `{name}`: {e}")))?;
        let dtype = if meta.float_prefixes.iter().any(|p| name.starts_with(p)) {
            GgmlDType::F32
        } else {
            meta.quant.storage_type(name, tensor.dims())
        };
        let q = QTensor::quantize(&tensor, dtype).map_err(|e| {
            ModelError::Weights(format!(
                "tensor `{name}` {:?} as {}: {e}",
                tensor.dims(),
                type_name(dtype)
            ))
        })?;
        // The bytes the writer stores (`gguf_file::write` writes `data()`), which the reader hashes.
        let data = q
            .data()
            .map_err(|e| ModelError::Weights(format!("tensor `{name}`: {e}")))?;
        digest.add(name, dtype, tensor.dims(), &data);
        stored.push(StoredTensor {
            name: name.clone(),
            shape: tensor.dims().to_vec(),
            dtype: type_name(dtype).to_string(),
            bytes: q.storage_size_in_bytes(),
        });
        quantized.push((name.as_str(), q));
    }
    let values = [
        ("general.architecture", Value::String("bert".into())),
        (
            "general.name",
            Value::String(format!(
                "multitag-{}",
                config.model_type.as_deref().unwrap_or("bert")
            )),
        ),
        (KEY_CONFIG, Value::String(meta.config_json.to_string())),
        (KEY_QUANT, Value::String(meta.quant.name().to_string())),
        (KEY_SOURCE, Value::String(meta.source.to_string())),
        (KEY_TASK, Value::String(meta.task.to_string())),
        (KEY_TENSORS_SHA256, Value::String(digest.finish())),
        (
            KEY_CONFIG_SHA256,
            Value::String(hex(&Sha256::digest(meta.config_json.as_bytes()))),
        ),
    ];
    let mut values = values.to_vec();
    if let Some(labels) = meta.labels {
        let labels_json =
            serde_json::to_string(&labels.labels).map_err(|e| ModelError::Labels(e.to_string()))?;
        values.push((KEY_LABELS, Value::String(labels_json)));
        values.push((KEY_LABELS_SHA256, Value::String(labels_sha256(labels))));
    }
    if !meta.task_metadata.is_empty() {
        for (key, value) in meta.task_metadata {
            values.push((key, Value::String(value.clone())));
        }
        let sha = task_metadata_sha256(|key| {
            meta.task_metadata
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
        });
        values.push((KEY_TASK_SHA256, Value::String(sha)));
    }
    if let Some(tokenizer) = meta.tokenizer_json {
        values.push((
            KEY_TOKENIZER_SHA256,
            Value::String(hex(&Sha256::digest(tokenizer))),
        ));
    }
    let metadata: Vec<(&str, &Value)> = values.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = quantized.iter().map(|(n, q)| (*n, q)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensor_refs)
        .map_err(|e| ModelError::Weights(format!("writing GGUF: {e}")))?;
    Ok((out.into_inner(), stored))
}

/// The tag list must follow the IOB2 scheme ([`LabelMap::check_scheme`]).
fn check_labels(source: &str, labels: &LabelMap) -> Result<(), ModelError> {
    labels
        .check_scheme()
        .map_err(|why| ModelError::Labels(format!("{source}: {why}")))
}

/// A parsed GGUF file over borrowed bytes. Tensors are read (and checked against the shape the
/// config expects) only when a layer asks for them; the file remembers which were read, so a
/// loader can check that the model used them all ([`Self::check_every_tensor_read`]).
pub struct GgufFile<'a> {
    source: String,
    /// Borrowed (the browser's fetched bytes, a test's buffer) or owned (a model directory that
    /// keeps the file it parsed once).
    bytes: Cow<'a, [u8]>,
    content: Content,
    /// Names of the tensors read so far (a lock rather than a cell so the file stays `Sync`).
    read: Mutex<BTreeSet<String>>,
}

impl<'a> GgufFile<'a> {
    /// Parses the header and checks the checksums the file carries (module doc); `source` names
    /// the file in every error. What the GGUF reader reports is quoted capped and escaped
    /// ([`printable`]): it can include what it read from a damaged header.
    pub fn read(source: &str, bytes: impl Into<Cow<'a, [u8]>>) -> Result<Self, ModelError> {
        let bytes = bytes.into();
        check_alignment(source, &bytes)?;
        let content = Content::read(&mut Cursor::new(&*bytes)).map_err(|e| {
            ModelError::Weights(format!(
                "{source}: not a readable GGUF file (truncated or corrupt?): {}",
                printable(&e.to_string(), MAX_READER_MESSAGE)
            ))
        })?;
        let file = Self {
            source: source.to_string(),
            bytes,
            content,
            read: Mutex::new(BTreeSet::new()),
        };
        file.verify_checksums()?;
        Ok(file)
    }

    /// Compares each checksum the file carries with what it holds.
    fn verify_checksums(&self) -> Result<(), ModelError> {
        let damaged = |what: &str, key: &str| {
            ModelError::Weights(format!(
                "{}: {what} do not match their checksum (`{key}`): the file is damaged; export it again",
                self.source
            ))
        };
        if let Some(expected) = self.metadata_opt_str(KEY_TENSORS_SHA256)? {
            if self.tensors_sha256()? != expected {
                return Err(damaged("the weights", KEY_TENSORS_SHA256));
            }
        }
        if let Some(expected) = self.metadata_opt_str(KEY_LABELS_SHA256)? {
            if labels_sha256(&self.labels()?) != expected {
                return Err(damaged(
                    &format!("the labels (`{KEY_LABELS}`)"),
                    KEY_LABELS_SHA256,
                ));
            }
        }
        if let Some(expected) = self.metadata_opt_str(KEY_TASK_SHA256)? {
            let mut values = Vec::new();
            for key in TASK_KEYS {
                values.push((key, self.metadata_opt_str(key)?));
            }
            let actual = task_metadata_sha256(|key| {
                values.iter().find(|(k, _)| *k == key).and_then(|(_, v)| *v)
            });
            if actual != expected {
                return Err(damaged(
                    &format!("the task's metadata ({})", TASK_KEYS.join(", ")),
                    KEY_TASK_SHA256,
                ));
            }
        }
        if let Some(expected) = self.metadata_opt_str(KEY_CONFIG_SHA256)? {
            let text = self.metadata_str(KEY_CONFIG)?;
            if hex(&Sha256::digest(text.as_bytes())) != expected {
                return Err(damaged(
                    &format!("the config (`{KEY_CONFIG}`)"),
                    KEY_CONFIG_SHA256,
                ));
            }
        }
        Ok(())
    }

    /// [`TensorDigest`] of the tensors as stored in the file.
    /// Checks the bytes of the `tokenizer.json` exported beside this file (`source` names it)
    /// against the checksum recorded at export, before they are parsed: a damaged tokenizer is
    /// refused here, and never reaches a parser that may panic on it (the `tokenizers` crate does
    /// on some malformed files, and a panic in the browser's worker cannot be caught). Files
    /// exported without the key are not checked.
    pub fn check_tokenizer(&self, source: &str, bytes: &[u8]) -> Result<(), ModelError> {
        match self.metadata_opt_str(KEY_TOKENIZER_SHA256)? {
            Some(expected) if hex(&Sha256::digest(bytes)) != expected => {
                Err(ModelError::Tokenizer(format!(
                    "{source}: does not match the checksum its export recorded \
                     (`{KEY_TOKENIZER_SHA256}` in {}): the file is damaged or belongs to another \
                     model; export it again",
                    self.source
                )))
            }
            _ => Ok(()),
        }
    }

    fn tensors_sha256(&self) -> Result<String, ModelError> {
        let mut names: Vec<&String> = self.content.tensor_infos.keys().collect();
        names.sort();
        let mut digest = TensorDigest::default();
        for name in names {
            let info = &self.content.tensor_infos[name];
            digest.add(
                name,
                info.ggml_dtype,
                info.shape.dims(),
                self.tensor_bytes(name)?,
            );
        }
        Ok(digest.finish())
    }

    /// The stored bytes of tensor `name`, bounds-checked (the header's sizes and offsets are
    /// untrusted).
    fn tensor_bytes(&self, name: &str) -> Result<&[u8], ModelError> {
        let info = &self.content.tensor_infos[name];
        let fail = |why: String| {
            ModelError::Weights(format!(
                "{}: tensor `{}`: {why}; the file is damaged or truncated",
                self.source,
                printable(name, 100)
            ))
        };
        let (block, type_size) = (info.ggml_dtype.block_size(), info.ggml_dtype.type_size());
        let elements = info
            .shape
            .dims()
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|n| n.is_multiple_of(block))
            .ok_or_else(|| fail(format!("impossible shape {:?}", info.shape.dims())))?;
        let size = (elements / block)
            .checked_mul(type_size)
            .ok_or_else(|| fail("impossible size".into()))?;
        let range = self
            .content
            .tensor_data_offset
            .checked_add(info.offset)
            .and_then(|start| usize::try_from(start).ok())
            .and_then(|start| Some(start..start.checked_add(size)?))
            .filter(|range| range.end <= self.bytes.len())
            .ok_or_else(|| {
                fail(format!(
                    "{size} bytes at offset {} past the end of the file ({} bytes)",
                    info.offset,
                    self.bytes.len()
                ))
            })?;
        Ok(&self.bytes[range])
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// A string metadata value.
    pub fn metadata_str(&self, key: &str) -> Result<&str, ModelError> {
        self.metadata_opt_str(key)?.ok_or_else(|| {
            ModelError::Weights(format!(
                "{}: no metadata `{key}`; was this file written by `trainer export`?",
                self.source
            ))
        })
    }

    /// A string metadata value that may be absent.
    pub fn metadata_opt_str(&self, key: &str) -> Result<Option<&str>, ModelError> {
        match self.content.metadata.get(key) {
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ModelError::Weights(format!(
                "{}: metadata `{key}` is a {:?}, expected a string",
                self.source,
                other.value_type()
            ))),
            None => Ok(None),
        }
    }

    /// The model config stored under `multitag.config`.
    pub fn config(&self) -> Result<BertConfig, ModelError> {
        let text = self.metadata_str(KEY_CONFIG)?;
        BertConfig::from_json(&format!("{}: {KEY_CONFIG}", self.source), text)
    }

    /// The tag list stored under `multitag.labels` (a JSON list, or a `{"labels": [...]}` map).
    pub fn labels(&self) -> Result<LabelMap, ModelError> {
        let text = self.metadata_str(KEY_LABELS)?;
        let where_ = format!("{}: {KEY_LABELS}", self.source);
        let labels = serde_json::from_str::<Vec<String>>(text)
            .map(|labels| LabelMap { labels })
            .or_else(|_| serde_json::from_str::<LabelMap>(text))
            .map_err(|e| ModelError::Labels(format!("{where_}: not a list of tags: {e}")))?;
        check_labels(&where_, &labels)?;
        Ok(labels)
    }

    /// Every tensor's name, shape and storage type, in name order.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, GgmlDType)> {
        let mut out: Vec<_> = self
            .content
            .tensor_infos
            .iter()
            .map(|(name, info)| (name.clone(), info.shape.dims().to_vec(), info.ggml_dtype))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The shape of the tensor `name`, if the file has it.
    pub fn tensor_shape(&self, name: &str) -> Option<&[usize]> {
        self.content
            .tensor_infos
            .get(name)
            .map(|info| info.shape.dims())
    }

    /// The tensor `name` as stored, on `device`, after checking it has `shape`.
    pub fn qtensor(&self, name: &str, shape: &[usize], device: &Device) -> CandleResult<QTensor> {
        let Some(info) = self.content.tensor_infos.get(name) else {
            candle_core::bail!("missing tensor `{name}`")
        };
        if info.shape.dims() != shape {
            candle_core::bail!(
                "tensor `{name}` has shape {:?}, the config expects {shape:?}",
                info.shape.dims()
            )
        }
        let tensor = info
            .read(
                &mut Cursor::new(&*self.bytes),
                self.content.tensor_data_offset,
                device,
            )
            .map_err(|e| candle_core::Error::Msg(format!("tensor `{name}`: {e}")))?;
        self.read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.to_string());
        Ok(tensor)
    }

    /// The tensors no layer has read so far, in name order.
    pub fn unread_tensors(&self) -> Vec<String> {
        let read = self
            .read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut unread: Vec<String> = self
            .content
            .tensor_infos
            .keys()
            .filter(|name| !read.contains(*name))
            .cloned()
            .collect();
        unread.sort();
        unread
    }

    /// After a model was built from this file with `config`: every tensor in the file must have
    /// been read, or the config (`multitag.config`) and the weights disagree (a config with fewer
    /// layers than the file would otherwise drop the rest silently).
    pub fn check_every_tensor_read(&self, config: &BertConfig) -> Result<(), ModelError> {
        let unread = self.unread_tensors();
        if unread.is_empty() {
            return Ok(());
        }
        Err(ModelError::unused_tensors(
            &self.source,
            KEY_CONFIG,
            config.num_hidden_layers,
            &unread,
        ))
    }

    /// The tensor `name` dequantized to f32, on `device`.
    pub fn f32_tensor(&self, name: &str, shape: &[usize], device: &Device) -> CandleResult<Tensor> {
        self.qtensor(name, shape, device)?
            .dequantize(device)?
            .to_dtype(DType::F32)
    }
}

/// Refuses a file whose `general.alignment` is an integer 0. candle's reader (candle-core 0.11.1,
/// `Content::read`) divides by that value unchecked, so such a file would panic, which in the
/// browser aborts the worker. The metadata is walked here as that reader walks it, to find the
/// value first; whatever cannot be walked is left for the reader to report.
fn check_alignment(source: &str, bytes: &[u8]) -> Result<(), ModelError> {
    if MetadataWalk::zero_alignment(bytes) == Some(true) {
        return Err(ModelError::Weights(format!(
            "{source}: not a readable GGUF file: metadata `general.alignment` is 0"
        )));
    }
    Ok(())
}

/// A cursor over a GGUF header (versions 1 to 3, as candle reads them), for [`check_alignment`].
/// Every read is bounds-checked and gives `None` past the end.
struct MetadataWalk<'b> {
    bytes: &'b [u8],
    at: usize,
    /// Version 1 has 32-bit lengths and counts, later versions 64-bit.
    wide: bool,
}

impl<'b> MetadataWalk<'b> {
    /// Whether the alignment candle would use is an integer 0 (the last entry of that name
    /// wins, as in the reader's map); `None` if the header cannot be walked.
    fn zero_alignment(bytes: &'b [u8]) -> Option<bool> {
        let mut walk = MetadataWalk {
            bytes,
            at: 0,
            wide: true,
        };
        if !matches!(walk.u32()?, 0x4655_4747 | 0x4747_5546) {
            return None;
        }
        walk.wide = walk.u32()? != 1;
        let _tensors = walk.len()?;
        let entries = walk.len()?;
        let mut zero = false;
        for _ in 0..entries {
            let key = walk.string()?;
            let key_is_alignment = key
                .iter()
                .rposition(|&b| b != 0)
                .is_some_and(|last| &key[..=last] == b"general.alignment");
            let ty = walk.u32()?;
            let start = walk.at;
            walk.skip(ty, 0)?;
            if key_is_alignment {
                // U8, I8, U16, I16, U32, I32: the integer types the reader takes; it ignores
                // others.
                zero = ty <= 5 && walk.bytes[start..walk.at].iter().all(|&b| b == 0);
            }
        }
        Some(zero)
    }

    fn take(&mut self, n: u64) -> Option<&'b [u8]> {
        let end = self.at.checked_add(usize::try_from(n).ok()?)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn len(&mut self) -> Option<u64> {
        if self.wide {
            Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
        } else {
            self.u32().map(u64::from)
        }
    }

    fn string(&mut self) -> Option<&'b [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    /// Skips one value of GGUF type `ty`; nesting is bounded as in the reader.
    fn skip(&mut self, ty: u32, depth: usize) -> Option<()> {
        let fixed = |ty: u32| match ty {
            0 | 1 | 7 => Some(1u64),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match ty {
            8 => self.string().map(drop),
            9 if depth < 64 => {
                let element = self.u32()?;
                let count = self.len()?;
                match fixed(element) {
                    Some(size) => self.take(count.checked_mul(size)?).map(drop),
                    // Each element takes at least one byte, so this ends at the file's end.
                    None => (0..count).try_for_each(|_| self.skip(element, depth + 1)),
                }
            }
            _ => self.take(fixed(ty)?).map(drop),
        }
    }
}
