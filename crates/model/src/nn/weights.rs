//! Reading checkpoint tensors from safetensors bytes under one naming convention: Hugging Face's
//! `BertForTokenClassification` (`bert.` encoder prefix, `classifier.` head). Plain `BertModel`
//! checkpoints (no prefix) and the legacy `gamma`/`beta` layer-norm names are mapped onto it, and
//! tensors no head uses (pooler, MLM heads, position_ids) are dropped.
//!
//! [`Weights`] is where the layers get their parameters: a candle-nn `VarBuilder` (float
//! tensors; with a `VarMap` behind it, trainable variables) or an exported GGUF model
//! ([`GgufFile`], possibly block-quantized). The layers ask for a dense layer, a lookup table or a
//! vector by name and shape and never see which kind of source they read.
use std::collections::HashMap;

use candle_core::{DType, Device, Result as CandleResult, Tensor};
use candle_nn::{Embedding, Init, VarBuilder, VarMap};

use super::dense::{Dense, DenseCompute};
use super::embedding::EmbeddingTable;
use crate::error::ModelError;
use crate::gguf::GgufFile;

/// A source of parameters, positioned at a name prefix (like `VarBuilder::pp`).
#[derive(Clone)]
pub enum Weights<'a> {
    /// Float weights; the only kind training builds.
    Float(VarBuilder<'a>),
    /// An exported GGUF model: matrices may be quantized, vectors are f32; dense layers multiply
    /// as `compute` says.
    Gguf {
        file: &'a GgufFile<'a>,
        compute: DenseCompute,
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
            device: device.clone(),
            prefix: String::new(),
        }
    }

    /// The source one level down: `pp("encoder")` reads `<prefix>.encoder.*`.
    pub fn pp(&self, name: impl ToString) -> Self {
        match self {
            Weights::Float(vb) => Weights::Float(vb.pp(name)),
            Weights::Gguf {
                file,
                compute,
                device,
                ..
            } => Weights::Gguf {
                file,
                compute: *compute,
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
            Weights::Gguf {
                file,
                compute,
                device,
                ..
            } => {
                let weight = file.qtensor(&self.full_name("weight"), &[out_dim, in_dim], device)?;
                let bias = file.f32_tensor(&self.full_name("bias"), &[out_dim], device)?;
                Dense::from_qtensor(weight, Some(bias), *compute)
            }
        }
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

/// The canonical name of a checkpoint tensor, or `None` for tensors we never use.
pub fn canonical_name(name: &str) -> Option<String> {
    let name = name.strip_prefix("model.").unwrap_or(name);
    if name.starts_with("classifier.") {
        return Some(name.to_string());
    }
    let body = name.strip_prefix("bert.").unwrap_or(name);
    if !(body.starts_with("embeddings.") || body.starts_with("encoder."))
        || body.ends_with("position_ids")
    {
        return None;
    }
    let body = body
        .strip_suffix(".gamma")
        .map(|b| format!("{b}.weight"))
        .or_else(|| body.strip_suffix(".beta").map(|b| format!("{b}.bias")))
        .unwrap_or_else(|| body.to_string());
    Some(format!("bert.{body}"))
}

/// Parses safetensors bytes into canonically named f32 tensors on `device`.
pub fn load_safetensors(
    source: &str,
    bytes: &[u8],
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let raw = candle_core::safetensors::load_buffer(bytes, device).map_err(|e| {
        ModelError::Weights(format!("{source}: not a readable safetensors file: {e}"))
    })?;
    let mut out = HashMap::new();
    for (name, tensor) in raw {
        if let Some(canonical) = canonical_name(&name) {
            let tensor = tensor
                .to_dtype(DType::F32)
                .map_err(|e| ModelError::Weights(format!("{source}: tensor `{name}`: {e}")))?;
            out.insert(canonical, tensor);
        }
    }
    if !out.keys().any(|k| k.starts_with("bert.encoder.")) {
        return Err(ModelError::Weights(format!(
            "{source}: no BERT encoder tensors (expected names like `encoder.layer.0.attention.self.query.weight`)"
        )));
    }
    Ok(out)
}

/// Copies checkpoint values into the trainable variables that exist in both. Returns the names of
/// variables the checkpoint did not have (a freshly initialised head, typically). A variable whose
/// shape differs from the checkpoint's is an error, since it means the config does not match.
pub fn assign_to_varmap(
    source: &str,
    tensors: &HashMap<String, Tensor>,
    varmap: &VarMap,
) -> Result<Vec<String>, ModelError> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::Weights("variable map poisoned".into()))?;
    let mut missing = Vec::new();
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
            None => missing.push(name.clone()),
        }
    }
    missing.sort();
    Ok(missing)
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
        assert_eq!(canonical_name("cls.predictions.bias"), None);
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
