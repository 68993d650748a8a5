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
use std::collections::HashMap;
use std::fmt;
use std::io::Cursor;
use std::str::FromStr;

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Result as CandleResult, Tensor};
use multitag_core::LabelMap;

use crate::config::BertConfig;
use crate::error::ModelError;

pub const KEY_CONFIG: &str = "multitag.config";
pub const KEY_LABELS: &str = "multitag.labels";
pub const KEY_QUANT: &str = "multitag.quant";
pub const KEY_SOURCE: &str = "multitag.source";
pub const KEY_TASK: &str = "multitag.task";

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
    pub labels: &'s LabelMap,
    pub quant: Quant,
    /// Where the model came from (a directory path, for provenance only).
    pub source: &'s str,
    /// The method's name ([`crate::tasks::TaskKind::name`]).
    pub task: &'s str,
}

/// Serialises named float tensors (canonical HF names) to GGUF bytes under the storage rule of the
/// module doc. Tensors are written in name order, so the same model always gives the same bytes.
pub fn write_gguf(
    tensors: &HashMap<String, Tensor>,
    meta: &ExportMetadata,
) -> Result<(Vec<u8>, Vec<StoredTensor>), ModelError> {
    let config = BertConfig::from_json(KEY_CONFIG, meta.config_json)?;
    check_labels(KEY_LABELS, meta.labels)?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut stored = Vec::with_capacity(names.len());
    let mut quantized = Vec::with_capacity(names.len());
    for name in names {
        let tensor = tensors[name]
            .to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| ModelError::Weights(format!("tensor `{name}`: {e}")))?;
        let dtype = meta.quant.storage_type(name, tensor.dims());
        let q = QTensor::quantize(&tensor, dtype).map_err(|e| {
            ModelError::Weights(format!(
                "tensor `{name}` {:?} as {}: {e}",
                tensor.dims(),
                type_name(dtype)
            ))
        })?;
        stored.push(StoredTensor {
            name: name.clone(),
            shape: tensor.dims().to_vec(),
            dtype: type_name(dtype).to_string(),
            bytes: q.storage_size_in_bytes(),
        });
        quantized.push((name.as_str(), q));
    }
    let labels_json = serde_json::to_string(&meta.labels.labels)
        .map_err(|e| ModelError::Labels(e.to_string()))?;
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
        (KEY_LABELS, Value::String(labels_json)),
        (KEY_QUANT, Value::String(meta.quant.name().to_string())),
        (KEY_SOURCE, Value::String(meta.source.to_string())),
        (KEY_TASK, Value::String(meta.task.to_string())),
    ];
    let metadata: Vec<(&str, &Value)> = values.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = quantized.iter().map(|(n, q)| (*n, q)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensor_refs)
        .map_err(|e| ModelError::Weights(format!("writing GGUF: {e}")))?;
    Ok((out.into_inner(), stored))
}

fn check_labels(source: &str, labels: &LabelMap) -> Result<(), ModelError> {
    if labels.is_empty() || labels.tag(0) != "O" {
        return Err(ModelError::Labels(format!(
            "{source}: the tag list must start with \"O\""
        )));
    }
    Ok(())
}

/// A parsed GGUF file over borrowed bytes. Tensors are read (and checked against the shape the
/// config expects) only when a layer asks for them.
pub struct GgufFile<'a> {
    source: String,
    /// Borrowed (the browser's fetched bytes, a test's buffer) or owned (a model directory that
    /// keeps the file it parsed once).
    bytes: Cow<'a, [u8]>,
    content: Content,
}

impl<'a> GgufFile<'a> {
    /// Parses the header; `source` names the file in every error.
    pub fn read(source: &str, bytes: impl Into<Cow<'a, [u8]>>) -> Result<Self, ModelError> {
        let bytes = bytes.into();
        let content = Content::read(&mut Cursor::new(&*bytes)).map_err(|e| {
            ModelError::Weights(format!(
                "{source}: not a readable GGUF file (truncated or corrupt?): {e}"
            ))
        })?;
        Ok(Self {
            source: source.to_string(),
            bytes,
            content,
        })
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
        info.read(
            &mut Cursor::new(&*self.bytes),
            self.content.tensor_data_offset,
            device,
        )
        .map_err(|e| candle_core::Error::Msg(format!("tensor `{name}`: {e}")))
    }

    /// The tensor `name` dequantized to f32, on `device`.
    pub fn f32_tensor(&self, name: &str, shape: &[usize], device: &Device) -> CandleResult<Tensor> {
        self.qtensor(name, shape, device)?
            .dequantize(device)?
            .to_dtype(DType::F32)
    }
}
