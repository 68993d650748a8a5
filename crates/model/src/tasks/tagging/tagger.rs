//! Strings in, entities out: the one inference path shared by `trainer tag`, `trainer eval`, the
//! training loop's dev evaluation and the browser. Titles are split into words (multitag-core),
//! tokenized, run through the model in batches, and each word takes the tag of its first
//! sub-word.
//!
//! [`Tagger`] owns a model and its tokenizer (inference); [`TaggingView`] borrows them, so the
//! training loop evaluates the model it is training through the same code without handing it
//! over. Every prediction goes through the view; whatever lends one ([`TaggingSource`]) is the
//! task's [`Predictor`] (and so an [`Embedder`]: its embeddings are the shared encoder's,
//! computed by [`embed_texts`] as for a plain encoder).
use candle_core::{Device, Tensor, D};
use multitag_core::{decode_entities, split_words, TaggedTitle, Word};

use super::model::NerModel;
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::nn::{DenseCompute, Mode};
use crate::tasks::embedding::embed_texts;
use crate::tasks::{on_worker_threads, Embedder, Predictor, TaskKind};
use crate::tokenize::{collate, WordTokenizer};

/// Titles are cut at this many sub-words (the paper's titles are short; 48 keeps all but a few).
pub const DEFAULT_TITLE_TOKENS: usize = 48;

pub struct Tagger {
    pub model: NerModel,
    pub tokenizer: WordTokenizer,
    pub device: Device,
    pub max_tokens: usize,
}

/// A tagging model and its tokenizer, borrowed: where the predictions are computed.
#[derive(Clone, Copy)]
pub struct TaggingView<'a> {
    pub model: &'a NerModel,
    pub tokenizer: &'a WordTokenizer,
    pub device: &'a Device,
    /// Titles are cut at this many sub-words.
    pub max_tokens: usize,
}

/// One word's predicted tag id and its probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WordPrediction {
    pub label: usize,
    pub probability: f32,
}

impl Tagger {
    pub fn new(model: NerModel, tokenizer: WordTokenizer, device: Device) -> Self {
        Self {
            model,
            tokenizer,
            device,
            max_tokens: DEFAULT_TITLE_TOKENS,
        }
    }

    /// A tagger from an exported model (`trainer export`): the GGUF bytes of `model.gguf`, whose
    /// metadata carry the config and the labels, and the bytes of `tokenizer.json`. Corrupt or
    /// truncated input is an error naming the file, never a panic. (Commands and the browser load
    /// any method's model with [`crate::tasks::predictor_from_gguf`].)
    pub fn from_gguf(
        gguf: &[u8],
        tokenizer_json: &[u8],
        device: &Device,
        compute: DenseCompute,
    ) -> Result<Tagger, ModelError> {
        let file = GgufFile::read("model.gguf", gguf)?;
        Self::from_gguf_file(&file, "tokenizer.json", tokenizer_json, device, compute)
    }

    /// [`Tagger::from_gguf`] from a file already parsed.
    pub fn from_gguf_file(
        file: &GgufFile,
        tokenizer_source: &str,
        tokenizer_json: &[u8],
        device: &Device,
        compute: DenseCompute,
    ) -> Result<Tagger, ModelError> {
        let model = NerModel::from_gguf_file(file, device, compute)?;
        let tokenizer = WordTokenizer::from_bytes(tokenizer_source, tokenizer_json)?;
        tokenizer.check_fits(
            tokenizer_source,
            model.encoder.config.vocab_size,
            file.source(),
        )?;
        Ok(Tagger::new(model, tokenizer, device.clone()))
    }
}

impl TaggingView<'_> {
    /// Per-word predictions for pre-split titles, in batches of `batch_size`.
    pub fn predict_words(
        &self,
        titles: &[Vec<&str>],
        batch_size: usize,
    ) -> Result<Vec<(Vec<WordPrediction>, bool)>, ModelError> {
        let mut out = Vec::with_capacity(titles.len());
        for chunk in titles.chunks(batch_size.max(1)) {
            let encodings = chunk
                .iter()
                .map(|words| self.tokenizer.encode_words(words, self.max_tokens))
                .collect::<Result<Vec<_>, _>>()?;
            let seqs: Vec<&[u32]> = encodings.iter().map(|e| e.ids.as_slice()).collect();
            let (ids, mask) = collate(&seqs, self.tokenizer.pad_id(), self.device)?;
            let (_, logits) = on_worker_threads(|| self.model.forward(&ids, &mask, &Mode::Infer))?;
            let probs = candle_nn::ops::softmax_last_dim(&logits)?;
            let best = probs.argmax(D::Minus1)?.to_vec2::<u32>()?;
            let best_prob = probs.max(D::Minus1)?.to_vec2::<f32>()?;
            for (row, enc) in encodings.iter().enumerate() {
                let words = enc
                    .first_subword
                    .iter()
                    .map(|position| match position {
                        Some(p) => WordPrediction {
                            label: best[row][*p] as usize,
                            probability: best_prob[row][*p],
                        },
                        None => WordPrediction {
                            label: 0,
                            probability: 1.0,
                        },
                    })
                    .collect();
                out.push((words, enc.truncated));
            }
        }
        Ok(out)
    }

    /// The IOB2 tag of each word of pre-split titles.
    pub fn predict_tags(
        &self,
        titles: &[Vec<&str>],
        batch_size: usize,
    ) -> Result<Vec<Vec<String>>, ModelError> {
        let labels = &self.model.labels;
        Ok(self
            .predict_words(titles, batch_size)?
            .into_iter()
            .map(|(words, _)| {
                words
                    .iter()
                    .map(|p| labels.tag(p.label).to_string())
                    .collect()
            })
            .collect())
    }

    /// Tags raw titles: character offsets in the results index the original strings.
    pub fn tag(&self, titles: &[&str], batch_size: usize) -> Result<Vec<TaggedTitle>, ModelError> {
        let words: Vec<Vec<Word>> = titles.iter().map(|t| split_words(t)).collect();
        let texts: Vec<Vec<&str>> = words
            .iter()
            .map(|ws| ws.iter().map(|w| w.text.as_str()).collect())
            .collect();
        let predictions = self.predict_words(&texts, batch_size)?;
        Ok(titles
            .iter()
            .zip(words.iter().zip(predictions))
            .map(|(title, (ws, (preds, truncated)))| {
                let tags: Vec<String> = preds
                    .iter()
                    .map(|p| self.model.labels.tag(p.label).to_string())
                    .collect();
                let scores: Vec<f32> = preds.iter().map(|p| p.probability).collect();
                TaggedTitle {
                    title: title.to_string(),
                    entities: decode_entities(title, ws, &tags, &scores),
                    truncated,
                }
            })
            .collect())
    }

    /// L2-normalised sentence embeddings, `(texts, hidden)`, so a matmul gives cosine similarities
    /// ([`embed_texts`] with this model's encoder).
    pub fn embed(
        &self,
        texts: &[&str],
        max_tokens: usize,
        batch_size: usize,
    ) -> Result<Tensor, ModelError> {
        embed_texts(
            &self.model.encoder,
            self.tokenizer,
            self.device,
            texts,
            max_tokens,
            batch_size,
        )
    }
}

/// What lends a [`TaggingView`]: the owned [`Tagger`], a view itself, or the model being trained
/// (the trainer's). Each is a [`Predictor`] through the one implementation below.
pub trait TaggingSource {
    fn view(&self) -> TaggingView<'_>;

    /// The encoder, where it is owned ([`Predictor::text_encoder_mut`]).
    fn encoder_mut(&mut self) -> Option<&mut crate::BertEncoder> {
        None
    }
}

impl TaggingSource for Tagger {
    fn view(&self) -> TaggingView<'_> {
        TaggingView {
            model: &self.model,
            tokenizer: &self.tokenizer,
            device: &self.device,
            max_tokens: self.max_tokens,
        }
    }

    fn encoder_mut(&mut self) -> Option<&mut crate::BertEncoder> {
        Some(&mut self.model.encoder)
    }
}

impl TaggingSource for TaggingView<'_> {
    fn view(&self) -> TaggingView<'_> {
        *self
    }
}

impl<T: TaggingSource> Embedder for T {
    fn max_tokens(&self) -> usize {
        self.view().max_tokens
    }

    fn embed(
        &self,
        texts: &[&str],
        max_tokens: usize,
        batch_size: usize,
    ) -> Result<Tensor, ModelError> {
        self.view().embed(texts, max_tokens, batch_size)
    }
}

impl<T: TaggingSource> Predictor for T {
    fn task(&self) -> TaskKind {
        TaskKind::Tagging
    }

    fn entity_types(&self) -> Vec<String> {
        self.view().model.labels.entity_types()
    }

    fn extract(&self, texts: &[&str], batch_size: usize) -> Result<Vec<TaggedTitle>, ModelError> {
        self.view().tag(texts, batch_size)
    }

    fn predict_tags(
        &self,
        words: &[Vec<&str>],
        batch_size: usize,
    ) -> Result<Vec<Vec<String>>, ModelError> {
        self.view().predict_tags(words, batch_size)
    }

    fn text_encoder_mut(&mut self) -> Option<&mut crate::BertEncoder> {
        self.encoder_mut()
    }
}
