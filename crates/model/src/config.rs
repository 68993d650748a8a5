//! The subset of a Hugging Face `config.json` that a BERT encoder needs, validated up front so a wrong
//! model directory fails with a message instead of a shape error deep inside a matmul.
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f32,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f32,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub model_type: Option<String>,
    /// How many layers the sentence embedding is pooled after; absent: all of them. A tagger
    /// trained with layers of its own (`trainer train --tagging-layers`) is stored as a deeper
    /// BERT whose top layers only the tags read, so the embedding keeps the base encoder's depth
    /// and Hugging Face transformers, which ignores the key, still loads it as a token classifier.
    #[serde(
        default,
        rename = "multitag_embedding_layers",
        skip_serializing_if = "Option::is_none"
    )]
    pub embedding_layers: Option<usize>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f32 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
/// The largest `layer_norm_eps` accepted (see [`BertConfig::from_json`]'s checks).
pub const MAX_LAYER_NORM_EPS: f64 = 1e-3;

impl BertConfig {
    /// Parses and checks a `config.json`; `source` names the file in errors. Refused: a model
    /// type other than BERT, a size of zero or beyond any BERT checkpoint, heads that do not divide
    /// the hidden size, an unknown activation, dropout outside [0, 1), and `layer_norm_eps` outside
    /// (0, [`MAX_LAYER_NORM_EPS`]].
    pub fn from_json(source: &str, text: &str) -> Result<Self, ModelError> {
        let config: BertConfig =
            serde_json::from_str(text).map_err(|e| ModelError::Config(format!("{source}: {e}")))?;
        config.validate(source)?;
        Ok(config)
    }

    fn validate(&self, source: &str) -> Result<(), ModelError> {
        let fail = |field: &str, why: &str| {
            Err(ModelError::Config(format!(
                "{source}: field `{field}`: {why}"
            )))
        };
        if let Some(kind) = &self.model_type {
            if kind != "bert" {
                return fail("model_type", &format!("`{kind}` is not a BERT model"));
            }
        }
        // Sizes: positive, and below bounds far above any published BERT-family checkpoint
        // (BERT-large: hidden 1024, 24 layers, 4096 feed-forward; multilingual vocabularies
        // ~250k; 512 positions), so a typo or a hostile file is refused here rather than by an
        // allocation of terabytes when the variables are created.
        for (field, value, max) in [
            ("vocab_size", self.vocab_size, 1 << 22),
            ("hidden_size", self.hidden_size, 1 << 14),
            ("num_hidden_layers", self.num_hidden_layers, 1 << 10),
            ("num_attention_heads", self.num_attention_heads, 1 << 10),
            ("intermediate_size", self.intermediate_size, 1 << 16),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                1 << 20,
            ),
            ("type_vocab_size", self.type_vocab_size, 1 << 10),
        ] {
            if value == 0 {
                return fail(field, "must be positive");
            }
            if value > max {
                return fail(
                    field,
                    &format!("{value} is implausibly large for a BERT model (at most {max})"),
                );
            }
        }
        if let Some(depth) = self.embedding_layers {
            if depth == 0 || depth > self.num_hidden_layers {
                return fail(
                    "multitag_embedding_layers",
                    &format!(
                        "{depth} is not between 1 and the {} layers",
                        self.num_hidden_layers
                    ),
                );
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return fail(
                "num_attention_heads",
                &format!(
                    "hidden_size {} is not divisible by {} heads",
                    self.hidden_size, self.num_attention_heads
                ),
            );
        }
        if !matches!(
            self.hidden_act.as_str(),
            "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu"
        ) {
            return fail(
                "hidden_act",
                &format!("unsupported activation `{}`", self.hidden_act),
            );
        }
        for (field, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return fail(field, "must be in [0, 1)");
            }
        }
        // Layer norm divides by sqrt(variance + eps). BERT and MiniLM use 1e-12, other
        // BERT-family checkpoints 1e-7 to 1e-5; an eps near the activations' variance (~1)
        // changes every output. Above 1e-3 it is a mistake, zero or below would divide by zero
        // on a constant row, and the kernels compute in f32, so it must stay positive as an f32.
        let eps = self.layer_norm_eps;
        if !(eps.is_finite() && eps > 0.0 && eps <= MAX_LAYER_NORM_EPS && (eps as f32) > 0.0) {
            return fail(
                "layer_norm_eps",
                &format!("{eps} is not in (0, {MAX_LAYER_NORM_EPS}] (BERT uses 1e-12)"),
            );
        }
        Ok(())
    }

    /// The layers the sentence embedding is pooled after (see `embedding_layers`).
    pub fn embedding_depth(&self) -> usize {
        self.embedding_layers.unwrap_or(self.num_hidden_layers)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"{"vocab_size": 100, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 16, "max_position_embeddings": 32, "model_type": "bert"}"#;

    #[test]
    fn parses_with_defaults() {
        let c = BertConfig::from_json("config.json", MINI).unwrap();
        assert_eq!(c.head_dim(), 4);
        assert_eq!(c.hidden_act, "gelu");
        assert_eq!(c.layer_norm_eps, 1e-12);
    }

    #[test]
    fn rejects_indivisible_heads_and_names_field() {
        let bad = MINI.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3");
        let err = BertConfig::from_json("x/config.json", &bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x/config.json") && err.contains("num_attention_heads"),
            "{err}"
        );
    }

    /// MINI with one field set to `value` (JSON).
    fn with(field: &str, value: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(MINI).unwrap();
        v[field] = serde_json::from_str(value).unwrap();
        v.to_string()
    }

    #[test]
    fn rejects_absurd_layer_norm_eps_naming_file_and_field() {
        for eps in ["1e-12", "1e-5", "0.001"] {
            let ok = with("layer_norm_eps", eps);
            assert!(BertConfig::from_json("c", &ok).is_ok(), "{eps}");
        }
        for eps in ["0", "-1e-12", "0.5", "0.011", "1e-300"] {
            let err = BertConfig::from_json("m/config.json", &with("layer_norm_eps", eps))
                .err()
                .unwrap_or_else(|| panic!("layer_norm_eps {eps} accepted"))
                .to_string();
            assert!(
                err.contains("m/config.json") && err.contains("layer_norm_eps"),
                "{eps}: {err}"
            );
        }
    }

    #[test]
    fn embedding_depth_is_every_layer_unless_set_within_them() {
        let two = with("num_hidden_layers", "2");
        assert_eq!(
            BertConfig::from_json("c", &two).unwrap().embedding_depth(),
            2
        );
        let mut v: serde_json::Value = serde_json::from_str(&two).unwrap();
        v["multitag_embedding_layers"] = 1.into();
        let config = BertConfig::from_json("c", &v.to_string()).unwrap();
        assert_eq!(config.embedding_depth(), 1);
        let back = serde_json::to_value(&config).unwrap();
        assert_eq!(back["multitag_embedding_layers"], 1);
        for depth in [0, 3] {
            v["multitag_embedding_layers"] = depth.into();
            let err = BertConfig::from_json("m/config.json", &v.to_string())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("m/config.json") && err.contains("multitag_embedding_layers"),
                "{depth}: {err}"
            );
        }
    }

    #[test]
    fn rejects_zero_and_absurd_sizes_naming_the_field() {
        for (field, value) in [
            ("vocab_size", "0"),
            ("hidden_size", "0"),
            ("num_hidden_layers", "0"),
            ("num_attention_heads", "0"),
            ("intermediate_size", "0"),
            ("max_position_embeddings", "0"),
            ("type_vocab_size", "0"),
            ("vocab_size", "1000000000000"),
            ("intermediate_size", "99999999"),
            ("num_hidden_layers", "100000"),
        ] {
            let err = BertConfig::from_json("m/config.json", &with(field, value))
                .err()
                .unwrap_or_else(|| panic!("{field} = {value} accepted"))
                .to_string();
            assert!(
                err.contains("m/config.json") && err.contains(field),
                "{field} = {value}: {err}"
            );
        }
    }

    #[test]
    fn rejects_non_bert_and_missing_fields() {
        let gpt = MINI.replace("\"bert\"", "\"gpt2\"");
        assert!(BertConfig::from_json("c", &gpt)
            .unwrap_err()
            .to_string()
            .contains("model_type"));
        let err = BertConfig::from_json("c", r#"{"vocab_size": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field"), "{err}");
    }
}
