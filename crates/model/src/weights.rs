//! Reading checkpoint tensors from safetensors bytes under one naming convention: Hugging Face's
//! `BertForTokenClassification` (`bert.` encoder prefix, `classifier.` head). Plain `BertModel`
//! checkpoints (no prefix) and the legacy `gamma`/`beta` layer-norm names are mapped onto it, and
//! tensors no head uses (pooler, MLM heads, position_ids) are dropped.
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use crate::ModelError;

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
