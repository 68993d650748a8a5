//! A trained span model at inference: sentences (pre-split words, or raw text split by
//! [`split_words`], the catalog's word rules) to entities and relations, in batches, through
//! [`extract`](super::extract::extract). Raw text gets character offsets for every entity, so the
//! output can be laid over the input as the tagger's is.
use std::collections::HashMap;

use candle_core::{Device, Tensor};
use multitag_core::relations::{Decoded, TypeSet};
use multitag_core::{char_slice, split_words, Entity};
use serde::Serialize;

use super::example::SubwordSentence;
use super::extract::{extract, ExtractConfig};
use super::model::{SpanModel, SpanSettings};
use crate::config::BertConfig;
use crate::error::ModelError;
use crate::nn::weights::TrackedTensors;
use crate::tasks::check_all_read;
use crate::tokenize::WordTokenizer;

pub struct SpanExtractor {
    pub model: SpanModel,
    pub tokenizer: WordTokenizer,
    pub config: ExtractConfig,
    device: Device,
}

/// A relation found in a text: its type, its arguments (indices into the text's entities) and
/// its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundRelation {
    pub label: String,
    pub head: usize,
    pub tail: usize,
    pub score: f32,
}

/// What a raw text holds: its entities with character offsets, and the relations between them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextRelations {
    pub text: String,
    pub entities: Vec<Entity>,
    pub relations: Vec<FoundRelation>,
}

impl SpanExtractor {
    pub fn new(
        model: SpanModel,
        tokenizer: WordTokenizer,
        config: ExtractConfig,
        device: Device,
    ) -> Self {
        Self {
            model,
            tokenizer,
            config,
            device,
        }
    }

    /// A trained model's float weights (`source` names them in errors); every tensor must be
    /// read by the model `config`, `types` and `settings` describe. Decodes with SpERT's
    /// defaults until [`Self::config`] is set.
    pub fn from_tensors(
        source: &str,
        config: &BertConfig,
        types: TypeSet,
        settings: SpanSettings,
        tensors: HashMap<String, Tensor>,
        tokenizer: WordTokenizer,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let (vb, log) = TrackedTensors::var_builder(tensors, device);
        let model = SpanModel::load(config, types, settings, vb)
            .map_err(|e| ModelError::Weights(format!("{source}: {e}")))?;
        check_all_read(source, config, &log)?;
        Ok(Self::new(
            model,
            tokenizer,
            ExtractConfig::default(),
            device.clone(),
        ))
    }

    pub fn types(&self) -> &TypeSet {
        &self.model.types
    }

    /// Entities and relations of pre-split sentences (word indices), `batch_size` sentences per
    /// encoder pass. A sentence longer than the encoder's positions is an error naming it.
    pub fn extract_words(
        &self,
        sentences: &[Vec<&str>],
        batch_size: usize,
    ) -> Result<Vec<Decoded>, ModelError> {
        let mut out = Vec::with_capacity(sentences.len());
        for (b, chunk) in sentences.chunks(batch_size.max(1)).enumerate() {
            let encoded = chunk
                .iter()
                .map(|words| SubwordSentence::encode(&self.tokenizer, words))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&SubwordSentence> = encoded.iter().collect();
            let found = extract(&self.model, &refs, &self.config, &self.device).map_err(|e| {
                // `extract` numbers sentences within the batch.
                ModelError::Input(format!(
                    "batch from sentence {}: {e}",
                    b * batch_size.max(1)
                ))
            })?;
            out.extend(found);
        }
        Ok(out)
    }

    /// Entities (character offsets into each text) and relations of raw texts, each split into
    /// words by [`split_words`].
    pub fn extract_texts(
        &self,
        texts: &[&str],
        batch_size: usize,
    ) -> Result<Vec<TextRelations>, ModelError> {
        let words: Vec<Vec<multitag_core::Word>> = texts.iter().map(|t| split_words(t)).collect();
        let split: Vec<Vec<&str>> = words
            .iter()
            .map(|w| w.iter().map(|w| w.text.as_str()).collect())
            .collect();
        let decoded = self.extract_words(&split, batch_size)?;
        let types = &self.model.types;
        Ok(texts
            .iter()
            .zip(&words)
            .zip(decoded)
            .map(|((text, words), found)| {
                let entities: Vec<Entity> = found
                    .entities
                    .iter()
                    .map(|e| {
                        let (start, end) =
                            (words[e.entity.start].start, words[e.entity.end - 1].end);
                        Entity {
                            label: types.entities[e.entity.ty].name.clone(),
                            text: char_slice(text, start, end).to_string(),
                            start,
                            end,
                            score: e.score,
                        }
                    })
                    .collect();
                let index = |mention| found.entities.iter().position(|e| e.entity == mention);
                let relations = found
                    .relations
                    .iter()
                    .filter_map(|r| {
                        let t = r.relation;
                        Some(FoundRelation {
                            label: types.relations[t.ty].name.clone(),
                            head: index(t.head)?,
                            tail: index(t.tail)?,
                            score: r.score,
                        })
                    })
                    .collect();
                TextRelations {
                    text: text.to_string(),
                    entities,
                    relations,
                }
            })
            .collect())
    }
}
