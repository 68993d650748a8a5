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
impl BertConfig {
    /// Parses and checks a `config.json`; `source` names the file in errors.
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
        if self.hidden_size == 0 || self.num_attention_heads == 0 {
            return fail("hidden_size", "must be positive");
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
        Ok(())
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
