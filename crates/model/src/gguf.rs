//! Exported models in candle's GGUF format: one file with every tensor of a trained [`NerModel`]
//! (Hugging Face names, e.g. `bert.encoder.layer.0.attention.self.query.weight`,
//! `classifier.weight`) and the metadata needed to rebuild it without any other file but the
//! tokenizer:
//!
//! | key | value |
//! |---|---|
//! | `multitag.config` | the model's `config.json` text |
//! | `multitag.labels` | the tag list as JSON, e.g. `["O", "B-BRAND", ...]` |
//! | `multitag.quant` | the requested type (`f32`, `f16`, `q8_0`, `q4k`) |
//! | `multitag.source` | the model directory it was exported from |
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
//! [`crate::Tagger::from_gguf`]. Dense layers are dequantized to f32 at load or, with
//! [`DenseCompute::Quantized`], multiplied with candle's quantized matmul (on CPU it also quantizes
//! each input row to 8 bits); the word-embedding table stays quantized and rows are dequantized as
//! they are looked up; the small position/token-type tables are dequantized to f32 at load.
use std::collections::HashMap;
use std::fmt;
use std::io::Cursor;
use std::str::FromStr;

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Result as CandleResult, Tensor};
use multitag_core::LabelMap;

use crate::config::BertConfig;
use crate::layers::DenseCompute;
use crate::ner::NerModel;
use crate::ModelError;

pub const KEY_CONFIG: &str = "multitag.config";
pub const KEY_LABELS: &str = "multitag.labels";
pub const KEY_QUANT: &str = "multitag.quant";
pub const KEY_SOURCE: &str = "multitag.source";

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
}

/// Serialises named float tensors (canonical HF names) to GGUF bytes under the storage rule of the
/// module doc. Tensors are written in name order, so the same model always gives the same bytes.
pub fn write_gguf(
    tensors: &HashMap<String, Tensor>,
    meta: &ExportMetadata,
) -> Result<(Vec<u8>, Vec<StoredTensor>), ModelError> {
    let config = BertConfig::from_json(KEY_CONFIG, meta.config_json)?;
    check_labels(KEY_LABELS, meta.labels)?;
    if !tensors.contains_key("classifier.weight") {
        return Err(ModelError::Weights(
            "no `classifier.weight`: only a trained tagger can be exported".into(),
        ));
    }
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
    bytes: &'a [u8],
    content: Content,
    device: Device,
    dense_compute: DenseCompute,
}

impl<'a> GgufFile<'a> {
    /// Parses the header; `source` names the file in every error.
    pub fn read(source: &str, bytes: &'a [u8], device: &Device) -> Result<Self, ModelError> {
        let content = Content::read(&mut Cursor::new(bytes)).map_err(|e| {
            ModelError::Weights(format!(
                "{source}: not a readable GGUF file (truncated or corrupt?): {e}"
            ))
        })?;
        Ok(Self {
            source: source.to_string(),
            bytes,
            content,
            device: device.clone(),
            dense_compute: DenseCompute::default(),
        })
    }

    /// How dense layers built from this file multiply (f32 by default).
    pub fn with_dense_compute(mut self, compute: DenseCompute) -> Self {
        self.dense_compute = compute;
        self
    }

    pub fn dense_compute(&self) -> DenseCompute {
        self.dense_compute
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// A string metadata value.
    pub fn metadata_str(&self, key: &str) -> Result<&str, ModelError> {
        match self.content.metadata.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(ModelError::Weights(format!(
                "{}: metadata `{key}` is a {:?}, expected a string",
                self.source,
                other.value_type()
            ))),
            None => Err(ModelError::Weights(format!(
                "{}: no metadata `{key}`; was this file written by `trainer export`?",
                self.source
            ))),
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

    /// The tensor `name` as stored, after checking it has `shape`.
    pub fn qtensor(&self, name: &str, shape: &[usize]) -> CandleResult<QTensor> {
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
            &mut Cursor::new(self.bytes),
            self.content.tensor_data_offset,
            &self.device,
        )
        .map_err(|e| candle_core::Error::Msg(format!("tensor `{name}`: {e}")))
    }

    /// The tensor `name` dequantized to f32.
    pub fn f32_tensor(&self, name: &str, shape: &[usize]) -> CandleResult<Tensor> {
        self.qtensor(name, shape)?
            .dequantize(&self.device)?
            .to_dtype(DType::F32)
    }
}

/// Rebuilds the tagging model (config and labels from the metadata, weights as stored).
pub fn load_ner_model(
    source: &str,
    bytes: &[u8],
    device: &Device,
    compute: DenseCompute,
) -> Result<NerModel, ModelError> {
    let file = GgufFile::read(source, bytes, device)?.with_dense_compute(compute);
    let config = file.config()?;
    let labels = file.labels()?;
    NerModel::load(&config, labels, &file)
        .map_err(|e| ModelError::Weights(format!("{source}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Mode;
    use crate::testing::max_diff;
    use crate::Tagger;
    use candle_nn::{VarBuilder, VarMap};

    /// Rows of 32 (q8_0 and q5_0 blocks) and a 256-wide intermediate, so every storage type of
    /// the rule shows up: under `q4k`, q4k for the feed-forward output, q8_0 for the other dense
    /// matrices, q5_0 for the embedding tables.
    const CONFIG: &str = r#"{"vocab_size": 40, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 256, "max_position_embeddings": 32,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "model_type": "bert"}"#;

    fn labels() -> LabelMap {
        LabelMap::from_entity_types(&["BRAND", "TYPE"])
    }

    /// A tiny model with seeded weights (candle's own initialisation cannot be seeded), so the
    /// quantization errors below are the same on every run.
    fn float_model() -> (VarMap, NerModel) {
        let config = BertConfig::from_json("c", CONFIG).unwrap();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = NerModel::load(&config, labels(), vb).unwrap();
        let mut state = 0x5EED_u64;
        let mut uniform = move || {
            // splitmix64, mapped to [-1, 1)
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f32 / (1u64 << 52) as f32 - 1.0
        };
        {
            let data = varmap.data().lock().unwrap();
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            for name in names {
                let var = &data[name];
                let dims = var.dims().to_vec();
                let values: Vec<f32> = (0..var.elem_count())
                    .map(|_| {
                        let u = uniform();
                        if name.ends_with("LayerNorm.weight") {
                            1.0 + 0.1 * u
                        } else if dims.len() == 1 {
                            0.1 * u
                        } else if name.contains("_embeddings") {
                            0.5 * u
                        } else {
                            // unit-variance outputs for unit-variance inputs
                            u * (3.0 / dims[1] as f32).sqrt()
                        }
                    })
                    .collect();
                var.set(&Tensor::from_vec(values, dims, &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
        (varmap, model)
    }

    fn export(varmap: &VarMap, quant: Quant) -> (Vec<u8>, Vec<StoredTensor>) {
        let tensors: HashMap<String, Tensor> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let labels = labels();
        write_gguf(
            &tensors,
            &ExportMetadata {
                config_json: CONFIG,
                labels: &labels,
                quant,
                source: "test",
            },
        )
        .unwrap()
    }

    fn logits(model: &NerModel) -> Tensor {
        let dev = Device::Cpu;
        let ids = Tensor::new(&[[1u32, 5, 6, 7, 2], [1, 8, 39, 2, 0]], &dev).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 1], [1, 1, 1, 1, 0]], &dev).unwrap();
        model.forward(&ids, &mask, &Mode::Infer).unwrap().1
    }

    #[test]
    fn storage_rule_falls_back_per_tensor() {
        let dense = "bert.encoder.layer.0.attention.self.query.weight";
        let table = "bert.embeddings.word_embeddings.weight";
        assert_eq!(Role::of(dense), Role::Dense);
        assert_eq!(Role::of("classifier.weight"), Role::Dense);
        assert_eq!(Role::of(table), Role::Table);
        assert_eq!(
            Role::of("bert.embeddings.position_embeddings.weight"),
            Role::Table
        );
        assert_eq!(Quant::Q4K.storage_type(dense, &[384, 1536]), GgmlDType::Q4K);
        assert_eq!(
            Quant::Q4K.storage_type(dense, &[1536, 384]),
            GgmlDType::Q8_0
        );
        assert_eq!(
            Quant::Q4K.storage_type(table, &[30522, 384]),
            GgmlDType::Q5_0
        );
        assert_eq!(
            Quant::Q4K.storage_type(table, &[30522, 512]),
            GgmlDType::Q4K
        );
        assert_eq!(Quant::Q4K.storage_type("x.bias", &[384]), GgmlDType::F32);
        assert_eq!(Quant::Q8_0.storage_type(dense, &[9, 384]), GgmlDType::Q8_0);
        assert_eq!(Quant::Q8_0.storage_type(dense, &[9, 16]), GgmlDType::F16);
        assert_eq!(Quant::F16.storage_type(table, &[9, 16]), GgmlDType::F16);
        assert_eq!(Quant::F32.storage_type(dense, &[9, 16]), GgmlDType::F32);
        assert_eq!("Q8_0".parse::<Quant>().unwrap(), Quant::Q8_0);
        assert!("q3".parse::<Quant>().is_err());
    }

    /// What rounding weights to int8 per row adds (measured 8.5e-3 of the largest logit for the
    /// f32 export), with a factor of two.
    const INT8_ROUNDING: f32 = 0.02;

    #[test]
    fn round_trip_gives_the_float_model_logits() {
        let (varmap, float) = float_model();
        let expected = logits(&float);
        let scale = expected
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // Measured with these seeded weights (max |difference| / max |logit|), with the quantized
        // matmul: f32 0, f16 3e-4, q8_0 1.5e-2, q4k 5.2e-2; the bounds leave about a factor of
        // two. Dequantized to f32 the input rows are not quantized, so the error is no larger;
        // int8 (per-row weights, 14-bit inputs) measured within the same bounds.
        for (quant, tolerance) in [
            (Quant::F32, 1e-6),
            (Quant::F16, 1e-3),
            (Quant::Q8_0, 3e-2),
            (Quant::Q4K, 0.1),
        ] {
            let (bytes, stored) = export(&varmap, quant);
            let load = |compute| load_ner_model("model.gguf", &bytes, &Device::Cpu, compute);
            let model = load(DenseCompute::Quantized).unwrap();
            let dequantized = load(DenseCompute::F32).unwrap();
            let int8 = load(DenseCompute::Int8).unwrap();
            for (compute, model, extra) in [
                ("quantized", &model, 0.0),
                ("f32", &dequantized, 0.0),
                ("int8", &int8, INT8_ROUNDING),
            ] {
                let diff = max_diff(&expected, &logits(model));
                assert!(
                    diff <= (tolerance + extra) * scale.max(1.0),
                    "{quant} ({compute} matmul): max |logit difference| {diff} (scale {scale})"
                );
            }
            assert!(!dequantized.classifier.is_quantized(), "{quant}");
            let types: std::collections::BTreeSet<&str> =
                stored.iter().map(|t| t.dtype.as_str()).collect();
            let want: &[&str] = match quant {
                Quant::F32 => &["f32"],
                Quant::F16 => &["f16", "f32"],
                Quant::Q8_0 => &["f32", "q8_0"],
                Quant::Q4K => &["f32", "q4k", "q5_0", "q8_0"],
            };
            assert_eq!(types.into_iter().collect::<Vec<_>>(), want, "{quant}");
            let quantized = model.classifier.is_quantized();
            assert_eq!(
                quantized,
                matches!(quant, Quant::Q8_0 | Quant::Q4K),
                "{quant}"
            );
        }
    }

    #[test]
    fn metadata_carries_config_labels_and_quant() {
        let (varmap, _) = float_model();
        let (bytes, stored) = export(&varmap, Quant::Q8_0);
        let file = GgufFile::read("m.gguf", &bytes, &Device::Cpu).unwrap();
        assert_eq!(file.labels().unwrap(), labels());
        assert_eq!(file.config().unwrap().intermediate_size, 256);
        assert_eq!(file.metadata_str(KEY_QUANT).unwrap(), "q8_0");
        assert_eq!(file.metadata_str(KEY_SOURCE).unwrap(), "test");
        let listed: Vec<String> = file.tensors().into_iter().map(|t| t.0).collect();
        let names: Vec<String> = stored.iter().map(|t| t.name.clone()).collect();
        assert_eq!(listed, names);
        assert!(names.contains(&"bert.encoder.layer.1.attention.self.query.weight".into()));
        assert!(names.contains(&"classifier.bias".into()));
        // Deterministic bytes for the same model.
        assert!(bytes == export(&varmap, Quant::Q8_0).0);
    }

    /// A tiny word-level BERT-style tokenizer, enough to run the whole Tagger.
    const TOKENIZER: &str = r#"{"version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [], "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
        "decoder": null,
        "model": {"type": "WordLevel", "unk_token": "[UNK]", "vocab": {"[PAD]": 0, "[CLS]": 1,
            "[SEP]": 2, "[UNK]": 3, "roadster": 4, "men": 5, "navy": 6, "blue": 7, "shirt": 8}}}"#;

    #[test]
    fn tagger_from_gguf_tags_like_the_float_tagger() {
        let (varmap, float) = float_model();
        let (bytes, _) = export(&varmap, Quant::F32);
        let tagger = Tagger::from_gguf(
            &bytes,
            TOKENIZER.as_bytes(),
            &Device::Cpu,
            DenseCompute::default(),
        )
        .unwrap();
        assert_eq!(tagger.model.labels, labels());
        let float = Tagger::new(
            float,
            crate::WordTokenizer::from_bytes("t", TOKENIZER.as_bytes()).unwrap(),
            Device::Cpu,
        );
        let titles = [
            "Roadster Men Navy Blue Shirt",
            "blue shirt",
            "नीला Shirt 👕",
        ];
        let a = float.tag(&titles, 2).unwrap();
        let b = tagger.tag(&titles, 2).unwrap();
        // Same entities; scores agree up to float summation order (the export's matrices are
        // stored transposed for the GEMM).
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.entities.len(), b.entities.len());
            for (x, y) in a.entities.iter().zip(&b.entities) {
                assert_eq!(
                    (&x.label, &x.text, x.start, x.end),
                    (&y.label, &y.text, y.start, y.end)
                );
                assert!((x.score - y.score).abs() < 1e-5, "{x:?} vs {y:?}");
            }
        }
        let e = tagger.embed(&titles, 16, 2).unwrap();
        assert_eq!(e.dims(), &[3, 32]);
    }

    #[test]
    fn corrupt_or_truncated_bytes_are_errors_naming_the_file() {
        let (varmap, _) = float_model();
        let (bytes, _) = export(&varmap, Quant::Q8_0);
        let mut flipped = bytes.clone();
        flipped[0] ^= 0xFF;
        let mut header_cut = bytes[..40].to_vec();
        header_cut.extend_from_slice(&[0xFF; 8]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("garbage", b"definitely not a gguf file".to_vec()),
            ("bad magic", flipped),
            ("header cut", header_cut),
            ("half", bytes[..bytes.len() / 2].to_vec()),
            ("tail cut", bytes[..bytes.len() - 40].to_vec()),
        ];
        for (what, case) in cases {
            let err = match Tagger::from_gguf(
                &case,
                TOKENIZER.as_bytes(),
                &Device::Cpu,
                DenseCompute::F32,
            ) {
                Ok(_) => panic!("{what}: loaded"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("model.gguf"), "{what}: {err}");
        }
        let err = match Tagger::from_gguf(&bytes, b"{not json", &Device::Cpu, DenseCompute::F32) {
            Ok(_) => panic!("bad tokenizer loaded"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("tokenizer.json"), "{err}");
    }

    #[test]
    fn a_file_without_our_metadata_is_refused_clearly() {
        let q = QTensor::quantize(
            &Tensor::zeros((2, 32), DType::F32, &Device::Cpu).unwrap(),
            GgmlDType::Q8_0,
        )
        .unwrap();
        let mut out = Cursor::new(Vec::new());
        gguf_file::write(&mut out, &[], &[("x", &q)]).unwrap();
        let err = match load_ner_model("other.gguf", out.get_ref(), &Device::Cpu, DenseCompute::F32)
        {
            Ok(_) => panic!("loaded"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("other.gguf") && err.contains(KEY_CONFIG),
            "{err}"
        );
    }
}
