//! Reading checkpoint tensors from safetensors bytes under one naming convention: Hugging Face's
//! `BertForTokenClassification` (`bert.` encoder prefix, `classifier.` head). Plain `BertModel`
//! checkpoints (no prefix) and the legacy `gamma`/`beta` layer-norm names are mapped onto it. The
//! tensors checkpoints carry that no model here uses are dropped by name ([`unused_by_design`]);
//! every other tensor must be used by the model the config describes, and each loader checks that
//! it was ([`assign_to_varmap`], [`TrackedTensors`]), so a config that disagrees with its weights
//! (fewer layers, say) is an error rather than a model that silently drops the rest.
//!
//! [`Weights`] is where the layers get their parameters: a candle-nn `VarBuilder` (float
//! tensors; with a `VarMap` behind it, trainable variables) or an exported GGUF model
//! ([`GgufFile`], possibly block-quantized). The layers ask for a dense layer, a lookup table or a
//! vector by name and shape and never see which kind of source they read.
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result as CandleResult, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Embedding, Init, VarBuilder, VarMap};

use super::dense::{Dense, DenseCompute};
use super::embedding::EmbeddingTable;
use crate::error::{printable, ModelError};
use crate::gguf::GgufFile;

/// Where encoders live in a checkpoint: the text encoder every task has, and BINDER's type
/// encoder. An export's dense layers under them multiply as its `compute` says, the others (a
/// task's heads) as its `head_compute`.
pub const ENCODER_PREFIXES: [&str; 2] = ["bert.", "type_encoder."];

/// A source of parameters, positioned at a name prefix (like `VarBuilder::pp`).
#[derive(Clone)]
pub enum Weights<'a> {
    /// Float weights; the only kind training builds.
    Float(VarBuilder<'a>),
    /// An exported GGUF model: matrices may be quantized, vectors are f32; the encoder's dense
    /// layers (`bert.*`) multiply as `compute` says, the others (a task's heads) as
    /// `head_compute` does (the same unless [`Weights::with_head_compute`]).
    Gguf {
        file: &'a GgufFile<'a>,
        compute: DenseCompute,
        head_compute: DenseCompute,
        device: Device,
        prefix: String,
    },
}

impl<'a> From<VarBuilder<'a>> for Weights<'a> {
    fn from(vb: VarBuilder<'a>) -> Self {
        Weights::Float(vb)
    }
}

impl<'a> Weights<'a> {
    /// The root of an exported model, its tensors read onto `device`, its dense layers
    /// multiplying as `compute` says.
    pub fn gguf(file: &'a GgufFile<'a>, compute: DenseCompute, device: &Device) -> Self {
        Weights::Gguf {
            file,
            compute,
            head_compute: compute,
            device: device.clone(),
            prefix: String::new(),
        }
    }

    /// The same source with the dense layers outside the encoder (not under `bert.`: a task's
    /// heads) multiplying as `compute` says; float weights are unchanged.
    pub fn with_head_compute(self, compute: DenseCompute) -> Self {
        match self {
            Weights::Gguf {
                file,
                compute: encoder,
                device,
                prefix,
                ..
            } => Weights::Gguf {
                file,
                compute: encoder,
                head_compute: compute,
                device,
                prefix,
            },
            float => float,
        }
    }

    /// The source one level down: `pp("encoder")` reads `<prefix>.encoder.*`.
    pub fn pp(&self, name: impl ToString) -> Self {
        match self {
            Weights::Float(vb) => Weights::Float(vb.pp(name)),
            Weights::Gguf {
                file,
                compute,
                head_compute,
                device,
                ..
            } => Weights::Gguf {
                file,
                compute: *compute,
                head_compute: *head_compute,
                device: device.clone(),
                prefix: self.full_name(&name.to_string()),
            },
        }
    }

    fn full_name(&self, leaf: &str) -> String {
        match self {
            Weights::Float(vb) => {
                let prefix = vb.prefix();
                if prefix.is_empty() {
                    leaf.to_string()
                } else {
                    format!("{prefix}.{leaf}")
                }
            }
            Weights::Gguf { prefix, .. } if prefix.is_empty() => leaf.to_string(),
            Weights::Gguf { prefix, .. } => format!("{prefix}.{leaf}"),
        }
    }

    /// A dense layer from `<prefix>.weight` `(out, in)` and `<prefix>.bias` `(out)`.
    pub fn dense(&self, in_dim: usize, out_dim: usize) -> CandleResult<Dense> {
        match self {
            Weights::Float(vb) => Ok(Dense::Float(candle_nn::linear(
                in_dim,
                out_dim,
                vb.clone(),
            )?)),
            Weights::Gguf { file, device, .. } => {
                let weight = file.qtensor(&self.full_name("weight"), &[out_dim, in_dim], device)?;
                let bias = file.f32_tensor(&self.full_name("bias"), &[out_dim], device)?;
                Dense::from_qtensor(weight, Some(bias), self.compute())
            }
        }
    }

    /// How an exported model's dense layers under this prefix multiply: the encoders' as
    /// `compute` says, the others (a task's heads) as `head_compute`.
    fn compute(&self) -> DenseCompute {
        match self {
            Weights::Gguf {
                compute,
                head_compute,
                ..
            } => {
                let name = self.full_name("");
                if ENCODER_PREFIXES.iter().any(|p| name.starts_with(p)) {
                    *compute
                } else {
                    *head_compute
                }
            }
            Weights::Float(_) => DenseCompute::F32,
        }
    }

    /// The dense layers `<prefix>.<part>` (each `(out, in)` with a bias) as one layer whose outputs
    /// are theirs side by side, for inference: one matmul instead of several, and for int8 one
    /// rounding of the input. Each output row keeps its own scale, so the products are those of
    /// the layers apart. `None` where they would not be one matrix: float (trainable) weights, and
    /// block-quantized matrices multiplied as stored.
    pub fn dense_stacked(
        &self,
        parts: &[&str],
        in_dim: usize,
        out_dim: usize,
    ) -> CandleResult<Option<Dense>> {
        let Weights::Gguf { file, device, .. } = self else {
            return Ok(None);
        };
        let compute = self.compute();
        let mut weights = Vec::with_capacity(parts.len());
        let mut biases = Vec::with_capacity(parts.len());
        for part in parts {
            let part = self.pp(part);
            let weight = file.qtensor(&part.full_name("weight"), &[out_dim, in_dim], device)?;
            if compute == DenseCompute::Quantized && !super::dense::is_float_storage(weight.dtype())
            {
                return Ok(None);
            }
            weights.push(weight.dequantize(device)?.to_dtype(DType::F32)?);
            biases.push(file.f32_tensor(&part.full_name("bias"), &[out_dim], device)?);
        }
        Ok(Some(Dense::from_f32(
            Tensor::cat(&weights, 0)?,
            Some(Tensor::cat(&biases, 0)?),
            compute,
        )?))
    }

    /// A lookup table `<prefix>.weight` `(rows, hidden)`, kept quantized if it is stored so.
    pub fn embedding(&self, rows: usize, hidden: usize) -> CandleResult<EmbeddingTable> {
        match self {
            Weights::Float(vb) => Ok(EmbeddingTable::Float(candle_nn::embedding(
                rows,
                hidden,
                vb.clone(),
            )?)),
            Weights::Gguf { file, device, .. } => EmbeddingTable::from_qtensor(file.qtensor(
                &self.full_name("weight"),
                &[rows, hidden],
                device,
            )?),
        }
    }

    /// A lookup table read as a whole f32 tensor (position and token-type embeddings, which the
    /// encoder slices rather than gathers); dequantized at load if stored quantized.
    pub fn float_embedding(&self, rows: usize, hidden: usize) -> CandleResult<Embedding> {
        match self {
            Weights::Float(vb) => candle_nn::embedding(rows, hidden, vb.clone()),
            Weights::Gguf { file, device, .. } => Ok(Embedding::new(
                file.f32_tensor(&self.full_name("weight"), &[rows, hidden], device)?,
                hidden,
            )),
        }
    }

    /// A vector `<prefix>.<leaf>` of `size` f32 values; `init` applies only when trainable
    /// variables are being created.
    pub fn vector(&self, size: usize, leaf: &str, init: Init) -> CandleResult<Tensor> {
        match self {
            Weights::Float(vb) => vb.get_with_hints(size, leaf, init),
            Weights::Gguf { file, device, .. } => {
                file.f32_tensor(&self.full_name(leaf), &[size], device)
            }
        }
    }
}

/// Tensors that Hugging Face BERT checkpoints legitimately carry but no model here uses, by name
/// (after an optional `model.` and `bert.` prefix). Anything else a checkpoint holds must be used.
/// - `embeddings.position_ids`: a buffer, not a parameter (the positions 0..max as integers, saved
///   by older `transformers`); the encoder computes positions itself.
///   all-MiniLM-L6-v2 carries it.
/// - `pooler.*`: `BertModel`'s pooler (a dense layer with tanh on `[CLS]`, for next-sentence
///   prediction and sequence classification); tagging reads every token and the description loss
///   mean-pools, so neither uses it. all-MiniLM-L6-v2 carries `pooler.dense.weight` and `.bias`.
/// - `cls.*`: the pretraining heads of `BertForPreTraining` / `BertForMaskedLM` checkpoints (masked
///   language model predictions, next-sentence relationship).
pub fn unused_by_design(name: &str) -> bool {
    let name = name.strip_prefix("model.").unwrap_or(name);
    let body = name.strip_prefix("bert.").unwrap_or(name);
    body == "embeddings.position_ids" || body.starts_with("pooler.") || body.starts_with("cls.")
}

/// The canonical name of a checkpoint tensor: `bert.` + the encoder's name (legacy `gamma`/`beta`
/// mapped to `weight`/`bias`), `classifier.*` as is; `None` for the tensors dropped by design
/// ([`unused_by_design`]). A name of neither kind is kept as it is, so that the loaders report it
/// as a tensor the model does not use.
pub fn canonical_name(name: &str) -> Option<String> {
    if unused_by_design(name) {
        return None;
    }
    let name = name.strip_prefix("model.").unwrap_or(name);
    if name.starts_with("classifier.") {
        return Some(name.to_string());
    }
    let body = name.strip_prefix("bert.").unwrap_or(name);
    if !(body.starts_with("embeddings.") || body.starts_with("encoder.")) {
        return Some(name.to_string());
    }
    let body = body
        .strip_suffix(".gamma")
        .map(|b| format!("{b}.weight"))
        .or_else(|| body.strip_suffix(".beta").map(|b| format!("{b}.bias")))
        .unwrap_or_else(|| body.to_string());
    Some(format!("bert.{body}"))
}

/// Parses safetensors bytes into canonically named f32 tensors on `device` ([`canonical_name`]).
pub fn load_safetensors(
    source: &str,
    bytes: &[u8],
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let raw = candle_core::safetensors::load_buffer(bytes, device).map_err(|e| {
        ModelError::Weights(format!("{source}: not a readable safetensors file: {e}"))
    })?;
    let mut out = HashMap::new();
    let mut names: Vec<&String> = raw.keys().collect();
    names.sort();
    for name in names {
        let Some(canonical) = canonical_name(name) else {
            continue;
        };
        let tensor = raw[name]
            .to_dtype(DType::F32)
            .map_err(|e| ModelError::Weights(format!("{source}: tensor `{name}`: {e}")))?;
        // `encoder.x` and `bert.encoder.x` (or `.gamma` and `.weight`) are one parameter: a file
        // with both is ambiguous.
        if out.insert(canonical.clone(), tensor).is_some() {
            return Err(ModelError::Weights(format!(
                "{source}: two tensors are `{}` (`{}` and another spelling of it)",
                printable(&canonical, 120),
                printable(name, 120)
            )));
        }
    }
    if !out.keys().any(|k| k.starts_with("bert.encoder.")) {
        return Err(ModelError::Weights(format!(
            "{source}: no BERT encoder tensors (expected names like `encoder.layer.0.attention.self.query.weight`)"
        )));
    }
    Ok(out)
}

/// What [`assign_to_varmap`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Assignment {
    /// Variables the checkpoint did not have (a freshly initialised head, typically), sorted.
    pub missing: Vec<String>,
    /// Checkpoint tensors no variable took, sorted: the config and the weights disagree.
    pub unused: Vec<String>,
}

/// Copies checkpoint values into the trainable variables that exist in both, and reports the
/// variables the checkpoint lacked and the tensors no variable took. A variable whose shape
/// differs from the checkpoint's is an error, since it means the config does not match.
pub fn assign_to_varmap(
    source: &str,
    tensors: &HashMap<String, Tensor>,
    varmap: &VarMap,
) -> Result<Assignment, ModelError> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::Weights("variable map poisoned".into()))?;
    let mut assignment = Assignment::default();
    for (name, var) in data.iter() {
        match tensors.get(name) {
            Some(value) => {
                if value.dims() != var.dims() {
                    return Err(ModelError::Weights(format!(
                        "{source}: tensor `{name}` has shape {:?}, the config expects {:?}",
                        value.dims(),
                        var.dims()
                    )));
                }
                var.set(&value.to_device(var.device())?.to_dtype(var.dtype())?)?;
            }
            None => assignment.missing.push(name.clone()),
        }
    }
    assignment.unused = tensors
        .keys()
        .filter(|name| !data.contains_key(*name))
        .cloned()
        .collect();
    assignment.missing.sort();
    assignment.unused.sort();
    Ok(assignment)
}

/// Float tensors for a `VarBuilder` that records which of them the model read, so the loader can
/// check afterwards that it read them all ([`ReadLog::unused`]).
pub struct TrackedTensors {
    tensors: HashMap<String, Tensor>,
    log: ReadLog,
}

/// The names a [`TrackedTensors`] was asked for, and all it had.
#[derive(Clone)]
pub struct ReadLog {
    all: Arc<BTreeSet<String>>,
    read: Arc<Mutex<BTreeSet<String>>>,
}

impl ReadLog {
    /// The tensors not read so far, sorted.
    pub fn unused(&self) -> Vec<String> {
        let read = self
            .read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.all.difference(&read).cloned().collect()
    }

    fn record(&self, name: &str) {
        self.read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.to_string());
    }
}

impl TrackedTensors {
    /// A `VarBuilder` over `tensors` (f32 on `device`) and the log of what it is asked for.
    pub fn var_builder(
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> (VarBuilder<'static>, ReadLog) {
        let log = ReadLog {
            all: Arc::new(tensors.keys().cloned().collect()),
            read: Arc::default(),
        };
        let backend = TrackedTensors {
            tensors,
            log: log.clone(),
        };
        (
            VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone()),
            log,
        )
    }
}

impl SimpleBackend for TrackedTensors {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> CandleResult<Tensor> {
        let tensor = SimpleBackend::get(&self.tensors, shape, name, init, dtype, device)?;
        self.log.record(name);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, device: &Device) -> CandleResult<Tensor> {
        let tensor = SimpleBackend::get_unchecked(&self.tensors, name, dtype, device)?;
        self.log.record(name);
        Ok(tensor)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_names_onto_one_convention() {
        assert_eq!(
            canonical_name("encoder.layer.0.output.LayerNorm.gamma").as_deref(),
            Some("bert.encoder.layer.0.output.LayerNorm.weight")
        );
        assert_eq!(
            canonical_name("bert.embeddings.word_embeddings.weight").as_deref(),
            Some("bert.embeddings.word_embeddings.weight")
        );
        assert_eq!(
            canonical_name("classifier.bias").as_deref(),
            Some("classifier.bias")
        );
        assert_eq!(canonical_name("pooler.dense.weight"), None);
        assert_eq!(canonical_name("embeddings.position_ids"), None);
        assert_eq!(canonical_name("bert.embeddings.position_ids"), None);
        assert_eq!(canonical_name("cls.predictions.bias"), None);
        assert_eq!(canonical_name("model.bert.pooler.dense.bias"), None);
        // Unknown names are kept, to be reported as unused rather than dropped silently.
        assert_eq!(
            canonical_name("lm_head.weight").as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(
            canonical_name("bert.embeddings.position_idz").as_deref(),
            Some("bert.embeddings.position_idz")
        );
    }

    fn tensors(names: &[&str]) -> HashMap<String, Tensor> {
        names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn assignment_reports_missing_variables_and_unused_tensors() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        vb.get(2, "a").unwrap();
        vb.get(2, "b").unwrap();
        let got = assign_to_varmap("m", &tensors(&["a", "z", "y"]), &varmap).unwrap();
        assert_eq!(
            got,
            Assignment {
                missing: vec!["b".into()],
                unused: vec!["y".into(), "z".into()],
            }
        );
    }

    #[test]
    fn tracked_tensors_log_what_was_read() {
        let (vb, log) = TrackedTensors::var_builder(tensors(&["a", "b", "c"]), &Device::Cpu);
        assert_eq!(log.unused(), ["a", "b", "c"]);
        vb.get(2, "b").unwrap();
        assert!(vb.get(3, "a").is_err(), "wrong shape");
        assert!(vb.get(2, "x").is_err(), "absent");
        assert_eq!(log.unused(), ["a", "c"]);
    }

    #[test]
    fn truncated_bytes_are_a_clear_error() {
        let err = load_safetensors(
            "m/model.safetensors",
            b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\"",
            &Device::Cpu,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("m/model.safetensors") && err.contains("safetensors"),
            "{err}"
        );
    }
}
