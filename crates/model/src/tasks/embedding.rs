//! Sentence embeddings from the shared encoder, for any model: [`embed_texts`] is the one
//! inference path from strings to unit-length vectors (a trained tagger's [`crate::Predictor`]
//! and a plain encoder both call it), and [`EncoderEmbedder`] is a plain base encoder (a Hugging
//! Face BERT directory without labels) behind the [`Embedder`] interface, so `trainer embed` and
//! `trainer match` work before any training.
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::{check_all_read, on_worker_threads, Embedder};
use crate::config::BertConfig;
use crate::error::ModelError;
use crate::models::BertEncoder;
use crate::nn::weights::TrackedTensors;
use crate::nn::{normalize_rows, Mode};
use crate::tokenize::{collate, WordTokenizer, DEFAULT_TEXT_TOKENS};

/// L2-normalised sentence embeddings of `texts`, `(texts, hidden)`: each text tokenized as free
/// text and cut at `max_tokens` sub-words, encoded in batches of `batch_size`, mean-pooled over
/// its real sub-words ([`BertEncoder::embed`], the pooling training uses) and scaled to unit
/// length, so a matmul of two results gives cosine similarities.
pub fn embed_texts(
    encoder: &BertEncoder,
    tokenizer: &WordTokenizer,
    device: &Device,
    texts: &[&str],
    max_tokens: usize,
    batch_size: usize,
) -> Result<Tensor, ModelError> {
    let mut parts = Vec::new();
    for chunk in texts.chunks(batch_size.max(1)) {
        let encoded = chunk
            .iter()
            .map(|t| tokenizer.encode_text(t, max_tokens))
            .collect::<Result<Vec<_>, _>>()?;
        let seqs: Vec<&[u32]> = encoded.iter().map(|e| e.as_slice()).collect();
        let (ids, mask) = collate(&seqs, tokenizer.pad_id(), device)?;
        let embedded = on_worker_threads(|| encoder.embed(&ids, &mask, &Mode::Infer))?;
        parts.push(normalize_rows(&embedded)?);
    }
    if parts.is_empty() {
        return Ok(Tensor::zeros(
            (0, encoder.config.hidden_size),
            DType::F32,
            device,
        )?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// A plain base encoder and its tokenizer: embeddings only (it has no head and no labels).
pub struct EncoderEmbedder {
    pub encoder: BertEncoder,
    pub tokenizer: WordTokenizer,
    pub device: Device,
    /// The default cut ([`Embedder::max_tokens`]): [`DEFAULT_TEXT_TOKENS`], the length training
    /// embeds descriptions at, since a base encoder has no title length of its own.
    pub max_tokens: usize,
}

impl EncoderEmbedder {
    /// The encoder of a base checkpoint's float weights (`tensors` under the canonical names,
    /// [`crate::nn::weights::load_safetensors`]; `source` names the file in errors). Every tensor
    /// must be used by the encoder `config` describes: the checkpoint's unused-by-design tensors
    /// (pooler, pretraining heads, position ids) were dropped when it was read, and a classifier
    /// left over would mean a trained model read without its labels. The tokenizer (named
    /// `tokenizer_source`) must fit the vocabulary.
    pub fn from_tensors(
        source: &str,
        config: &BertConfig,
        tensors: HashMap<String, Tensor>,
        tokenizer_source: &str,
        tokenizer: WordTokenizer,
        device: &Device,
    ) -> Result<Self, ModelError> {
        tokenizer.check_fits(tokenizer_source, config.vocab_size, source)?;
        let (vb, log) = TrackedTensors::var_builder(tensors, device);
        let encoder = BertEncoder::load(config, vb.pp("bert"))
            .map_err(|e| ModelError::Weights(format!("{source}: {e}")))?;
        check_all_read(source, config, &log)?;
        Ok(Self {
            encoder,
            tokenizer,
            device: device.clone(),
            max_tokens: DEFAULT_TEXT_TOKENS,
        })
    }
}

impl Embedder for EncoderEmbedder {
    fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    fn embed(
        &self,
        texts: &[&str],
        max_tokens: usize,
        batch_size: usize,
    ) -> Result<Tensor, ModelError> {
        embed_texts(
            &self.encoder,
            &self.tokenizer,
            &self.device,
            texts,
            max_tokens,
            batch_size,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::tagging::{NerModel, Tagger};
    use crate::testing::{max_diff, TOKENIZER};
    use candle_nn::{VarBuilder, VarMap};
    use multitag_core::LabelMap;

    fn config(vocab_size: usize) -> BertConfig {
        BertConfig::from_json(
            "tiny",
            &format!(
                r#"{{"vocab_size": {vocab_size}, "hidden_size": 16, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
                    "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
                    "max_position_embeddings": 16, "type_vocab_size": 2}}"#
            ),
        )
        .unwrap()
    }

    fn tokenizer() -> WordTokenizer {
        WordTokenizer::from_bytes("tokenizer.json", TOKENIZER.as_bytes()).unwrap()
    }

    /// A randomly initialised tagger and the encoder tensors of the same weights under their
    /// checkpoint names, as a base model directory would hold them.
    fn tagger_and_encoder_tensors() -> (Tagger, HashMap<String, Tensor>) {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let labels = LabelMap::from_entity_types(&["BRAND"]);
        let model = NerModel::load(&config(9), labels, vb).unwrap();
        let tensors = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, _)| name.starts_with("bert."))
            .map(|(name, var)| (name.clone(), var.as_tensor().copy().unwrap()))
            .collect();
        (Tagger::new(model, tokenizer(), Device::Cpu), tensors)
    }

    /// A trained model's embeddings and a plain encoder's go through the same code: with the
    /// same encoder weights they are the same vectors, and unit length.
    #[test]
    fn a_plain_encoder_embeds_as_the_tagger_does() {
        let (tagger, tensors) = tagger_and_encoder_tensors();
        let plain = EncoderEmbedder::from_tensors(
            "model.safetensors",
            &config(9),
            tensors,
            "tokenizer.json",
            tokenizer(),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(plain.max_tokens(), DEFAULT_TEXT_TOKENS);
        let texts = ["navy shirt", "roadster men blue shirt", "navy shirt"];
        let ours = plain.embed(&texts, 8, 2).unwrap();
        let theirs = tagger.embed(&texts, 8, 2).unwrap();
        assert_eq!(ours.dims(), &[3, 16]);
        let diff = max_diff(&ours, &theirs);
        assert!(diff < 1e-6, "{diff}");
        let norms = ours
            .sqr()
            .unwrap()
            .sum(1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
        let (first, again) = (ours.get(0).unwrap(), ours.get(2).unwrap());
        let diff = max_diff(&first, &again);
        assert!(diff < 1e-6, "the same text in another batch: {diff}");
        let none = plain.embed(&[], 8, 2).unwrap();
        assert_eq!(none.dims(), &[0, 16]);
    }

    /// A tensor the encoder does not use (a classifier left without its labels, or a layer the
    /// config does not have) is reported, naming the file; so is a tokenizer too big for the
    /// vocabulary.
    #[test]
    fn unused_tensors_and_a_foreign_tokenizer_are_errors() {
        let (_, mut tensors) = tagger_and_encoder_tensors();
        let load = |tensors, vocab_size| {
            EncoderEmbedder::from_tensors(
                "model.safetensors",
                &config(vocab_size),
                tensors,
                "tokenizer.json",
                tokenizer(),
                &Device::Cpu,
            )
        };
        let err = load(tensors.clone(), 5).err().expect("a small vocabulary");
        assert!(
            err.to_string().contains("tokenizer.json: 9 tokens"),
            "{err}"
        );
        tensors.insert(
            "classifier.weight".into(),
            Tensor::zeros((3, 16), DType::F32, &Device::Cpu).unwrap(),
        );
        let err = load(tensors, 9).err().expect("an unused tensor");
        let message = err.to_string();
        assert!(
            message.contains("model.safetensors") && message.contains("classifier.weight"),
            "{message}"
        );
    }
}
