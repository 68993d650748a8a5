//! BINDER at inference: a [`Predictor`] that tags texts with the types it holds, each type's
//! vectors computed once from its description and kept ([`BinderTagger::add_types`] adds types
//! described at tag time; the trained ones are untouched). Tagging costs one text-encoder pass.
//!
//! A sentence longer than the encoder's positions is cut after the last word that fits; the words
//! past the cut get no entity and the result says it was truncated.
use std::collections::HashMap;

use candle_core::{Device, Tensor};
use multitag_core::binder::{read_type_descriptions, to_json, ScoredSpan, TypeDescription};
use multitag_core::{iob2_from_spans, split_words, Entity, Span, TaggedTitle};

use super::model::{BinderModel, BinderSettings, TypeVectors};
use crate::config::BertConfig;
use crate::error::ModelError;
use crate::gguf::{GgufFile, KEY_BINDER, KEY_TYPES};
use crate::nn::weights::TrackedTensors;
use crate::nn::Mode;
use crate::nn::{DenseCompute, Weights};
use crate::tasks::embedding::embed_texts;
use crate::tasks::relations::SubwordSentence;
use crate::tasks::{
    check_all_read, metadata_json, on_worker_threads, open_export, Embedder, Predictor, TaskKind,
};
use crate::tokenize::WordTokenizer;

/// The longest description read, in sub-words (the reference's `max_seq_length`).
pub const DESCRIPTION_TOKENS: usize = 128;

/// A BINDER model (borrowed: the one being trained, or owned by a [`BinderTagger`]) with the
/// vectors of the types it tags.
pub struct BinderView<'a> {
    pub model: &'a BinderModel,
    pub tokenizer: &'a WordTokenizer,
    pub device: &'a Device,
    pub types: &'a [TypeDescription],
    pub vectors: &'a TypeVectors,
}

/// Sub-word ids of each type's description (`[CLS] ... [SEP]`, at most [`DESCRIPTION_TOKENS`]).
pub fn encode_descriptions(
    tokenizer: &WordTokenizer,
    types: &[TypeDescription],
) -> Result<Vec<Vec<u32>>, ModelError> {
    types
        .iter()
        .map(|t| tokenizer.encode_text(&t.description, DESCRIPTION_TOKENS))
        .collect()
}

/// The vectors of `types` from `model`'s type encoder (inference: no dropout).
pub fn type_vectors(
    model: &BinderModel,
    tokenizer: &WordTokenizer,
    types: &[TypeDescription],
    device: &Device,
) -> Result<TypeVectors, ModelError> {
    let ids = encode_descriptions(tokenizer, types)?;
    let ids: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    Ok(on_worker_threads(|| {
        model.type_vectors(&ids, device, &Mode::Infer)
    })?)
}

impl BinderView<'_> {
    /// The first words of `words` whose sub-words fit the encoder, and whether any were cut.
    fn fitted(&self, words: &[&str]) -> Result<(SubwordSentence, bool), ModelError> {
        let sentence = SubwordSentence::encode(self.tokenizer, words)?;
        let max = self.model.max_positions();
        if sentence.ids.len() <= max {
            return Ok((sentence, false));
        }
        // Keep the words that end before the last position, which [SEP] takes.
        let keep = sentence.words.iter().take_while(|w| w.end < max).count();
        let end = sentence
            .words
            .get(keep.wrapping_sub(1))
            .map_or(1, |w| w.end);
        let mut ids = sentence.ids[..end].to_vec();
        ids.push(*sentence.ids.last().expect("[SEP]"));
        let words = sentence.words[..keep].to_vec();
        Ok((SubwordSentence { ids, words }, true))
    }

    /// Each sentence's entities and whether it was cut, `batch_size` sentences per pass.
    pub fn predict_words(
        &self,
        sentences: &[Vec<&str>],
        batch_size: usize,
    ) -> Result<Vec<(Vec<ScoredSpan>, bool)>, ModelError> {
        let mut out = Vec::with_capacity(sentences.len());
        for chunk in sentences.chunks(batch_size.max(1)) {
            let fitted = chunk
                .iter()
                .map(|words| self.fitted(words))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&SubwordSentence> = fitted.iter().map(|(s, _)| s).collect();
            let found = on_worker_threads(|| self.model.predict(&refs, self.vectors, self.device))?;
            out.extend(found.into_iter().zip(fitted.iter().map(|(_, cut)| *cut)));
        }
        Ok(out)
    }

    fn spans(&self, found: &[ScoredSpan]) -> Vec<Span> {
        found
            .iter()
            .map(|s| Span {
                label: self.types[s.type_index].name.clone(),
                start: s.span.start,
                end: s.span.end,
            })
            .collect()
    }
}

impl Embedder for BinderView<'_> {
    /// Sentences are read whole, up to the encoder's positions.
    fn max_tokens(&self) -> usize {
        self.model.max_positions()
    }

    fn embed(
        &self,
        texts: &[&str],
        max_tokens: usize,
        batch_size: usize,
    ) -> Result<Tensor, ModelError> {
        embed_texts(
            &self.model.text,
            self.tokenizer,
            self.device,
            texts,
            max_tokens,
            batch_size,
        )
    }
}

impl Predictor for BinderView<'_> {
    fn task(&self) -> TaskKind {
        TaskKind::Binder
    }

    fn entity_types(&self) -> Vec<String> {
        self.types.iter().map(|t| t.name.clone()).collect()
    }

    /// Overlapping predictions of nested decoding cannot be written as tags: the flat rule
    /// (best score first) picks among them here.
    fn extract(&self, texts: &[&str], batch_size: usize) -> Result<Vec<TaggedTitle>, ModelError> {
        let words: Vec<Vec<multitag_core::Word>> = texts.iter().map(|t| split_words(t)).collect();
        let plain: Vec<Vec<&str>> = words
            .iter()
            .map(|ws| ws.iter().map(|w| w.text.as_str()).collect())
            .collect();
        let found = self.predict_words(&plain, batch_size)?;
        Ok(texts
            .iter()
            .zip(words.iter().zip(found))
            .map(|(text, (ws, (spans, truncated)))| {
                let chars: Vec<char> = text.chars().collect();
                let entities = spans
                    .iter()
                    .map(|s| {
                        let (start, end) = (ws[s.span.start].start, ws[s.span.end - 1].end);
                        Entity {
                            label: self.types[s.type_index].name.clone(),
                            text: chars[start..end].iter().collect(),
                            start,
                            end,
                            score: s.score,
                        }
                    })
                    .collect();
                TaggedTitle {
                    title: text.to_string(),
                    entities,
                    truncated,
                }
            })
            .collect())
    }

    fn predict_tags(
        &self,
        words: &[Vec<&str>],
        batch_size: usize,
    ) -> Result<Vec<Vec<String>>, ModelError> {
        let found = self.predict_words(words, batch_size)?;
        Ok(words
            .iter()
            .zip(found)
            .map(|(ws, (spans, _))| {
                let flat =
                    multitag_core::binder::decode(spans, multitag_core::binder::Overlaps::Flat);
                iob2_from_spans(ws.len(), &self.spans(&flat))
            })
            .collect())
    }
}

/// An owned BINDER model with its types' vectors, computed once and kept.
pub struct BinderTagger {
    pub model: BinderModel,
    pub tokenizer: WordTokenizer,
    pub device: Device,
    /// The trained types, then those described at tag time.
    types: Vec<TypeDescription>,
    trained: usize,
    vectors: TypeVectors,
}

impl BinderTagger {
    /// `types` are the model's trained types, in training order.
    pub fn new(
        model: BinderModel,
        tokenizer: WordTokenizer,
        types: Vec<TypeDescription>,
        device: Device,
    ) -> Result<Self, ModelError> {
        let vectors = type_vectors(&model, &tokenizer, &types, &device)?;
        Ok(Self {
            model,
            tokenizer,
            device,
            trained: types.len(),
            types,
            vectors,
        })
    }

    /// An exported model (task `binder`): its config, trained types and settings from the
    /// metadata, its weights through [`crate::nn::Weights`] like every exported model's. Both
    /// encoders' dense layers multiply as `compute` says, the heads in f32 (`trainer export` stores
    /// them f32). `tokenizer_json` is checked against the file's checksum before it is parsed, and
    /// every tensor in the file must be used.
    pub fn from_gguf(
        file: &GgufFile,
        tokenizer_source: &str,
        tokenizer_json: &[u8],
        device: &Device,
        compute: DenseCompute,
    ) -> Result<Self, ModelError> {
        let config = open_export(
            file,
            TaskKind::Binder,
            "train one with --task binder",
            tokenizer_source,
            tokenizer_json,
        )?;
        let types_source = format!("{}: {KEY_TYPES}", file.source());
        let types = read_type_descriptions(&types_source, file.metadata_str(KEY_TYPES)?)
            .map_err(|e| ModelError::Config(e.to_string()))?;
        let settings: BinderSettings = metadata_json(file, KEY_BINDER)?;
        let weights = Weights::gguf(file, compute, device).with_head_compute(DenseCompute::F32);
        let model = BinderModel::load(&config, settings, weights)
            .map_err(|e| ModelError::Weights(format!("{}: {e}", file.source())))?;
        file.check_every_tensor_read(&config)?;
        let tokenizer = WordTokenizer::from_bytes(tokenizer_source, tokenizer_json)?;
        Self::new(model, tokenizer, types, device.clone())
    }

    /// What an export records of this model beside its weights ([`crate::gguf::TASK_KEYS`]): the
    /// trained types with their descriptions, and the settings.
    pub fn export_metadata(&self) -> Vec<(&'static str, String)> {
        vec![
            (KEY_TYPES, to_json(&self.types[..self.trained])),
            (
                KEY_BINDER,
                serde_json::to_string(&self.model.settings).expect("plain settings serialize"),
            ),
        ]
    }

    /// The model of float weights `tensors` (Hugging Face names; `source` names the file in
    /// errors); every tensor must be used.
    pub fn from_tensors(
        source: &str,
        config: &BertConfig,
        settings: BinderSettings,
        types: Vec<TypeDescription>,
        tensors: HashMap<String, Tensor>,
        tokenizer: WordTokenizer,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let (vb, log) = TrackedTensors::var_builder(tensors, device);
        let model = BinderModel::load(config, settings, vb)
            .map_err(|e| ModelError::Weights(format!("{source}: {e}")))?;
        check_all_read(source, config, &log)?;
        Self::new(model, tokenizer, types, device.clone())
    }

    /// Adds types described at tag time after the ones held (the trained ones first). A type
    /// held already with the same description is skipped (a dataset's file with new types added
    /// to it can be given whole); the same name with another description is refused, since its
    /// tags would mean something else than the name says. Returns how many were added.
    pub fn add_types(&mut self, more: &[TypeDescription]) -> Result<usize, ModelError> {
        let mut new: Vec<TypeDescription> = Vec::new();
        for t in more {
            match self.types.iter().chain(&new).find(|h| h.name == t.name) {
                Some(held) if held.description == t.description => {}
                Some(_) => {
                    return Err(ModelError::Task(format!(
                        "type `{}` is already described otherwise; give the new description \
                         another name",
                        crate::error::printable(&t.name, 40)
                    )))
                }
                None => new.push(t.clone()),
            }
        }
        if new.is_empty() {
            return Ok(0);
        }
        let extra = type_vectors(&self.model, &self.tokenizer, &new, &self.device)?;
        self.vectors = self.vectors.concat(&extra)?;
        let added = new.len();
        self.types.extend(new);
        Ok(added)
    }

    /// Makes `described` the types after the trained ones (none: the trained types alone). Their
    /// vectors are kept while the set stays the same, so asking again costs nothing.
    pub fn set_described(&mut self, described: &[TypeDescription]) -> Result<(), ModelError> {
        if self.types[self.trained..] == *described {
            return Ok(());
        }
        self.types.truncate(self.trained);
        self.vectors = self.vectors.first(self.trained)?;
        self.add_types(described)?;
        Ok(())
    }

    pub fn types(&self) -> &[TypeDescription] {
        &self.types
    }

    /// The types the model was trained with (the first of [`Self::types`]).
    pub fn trained_types(&self) -> &[TypeDescription] {
        &self.types[..self.trained]
    }

    pub fn view(&self) -> BinderView<'_> {
        BinderView {
            model: &self.model,
            tokenizer: &self.tokenizer,
            device: &self.device,
            types: &self.types,
            vectors: &self.vectors,
        }
    }
}

impl Embedder for BinderTagger {
    fn max_tokens(&self) -> usize {
        self.view().max_tokens()
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

impl Predictor for BinderTagger {
    fn task(&self) -> TaskKind {
        TaskKind::Binder
    }

    fn entity_types(&self) -> Vec<String> {
        self.view().entity_types()
    }

    fn extract(&self, texts: &[&str], batch_size: usize) -> Result<Vec<TaggedTitle>, ModelError> {
        self.view().extract(texts, batch_size)
    }

    fn predict_tags(
        &self,
        words: &[Vec<&str>],
        batch_size: usize,
    ) -> Result<Vec<Vec<String>>, ModelError> {
        self.view().predict_tags(words, batch_size)
    }

    fn text_encoder_mut(&mut self) -> Option<&mut crate::BertEncoder> {
        Some(&mut self.model.text)
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::tiny;
    use super::*;

    fn described(name: &str, description: &str) -> TypeDescription {
        TypeDescription {
            name: name.into(),
            description: description.into(),
        }
    }

    fn tagger() -> BinderTagger {
        let (_, model) = tiny();
        let tokenizer =
            WordTokenizer::from_bytes("tokenizer.json", crate::testing::TOKENIZER.as_bytes())
                .unwrap();
        // The tiny tokenizer's vocabulary stands in for descriptions.
        let types = vec![described("COLOR", "navy blue"), described("TYPE", "shirt")];
        BinderTagger::new(model, tokenizer, types, Device::Cpu).unwrap()
    }

    fn rows(t: &Tensor) -> Vec<Vec<u32>> {
        t.to_vec2::<f32>()
            .unwrap()
            .iter()
            .map(|r| r.iter().map(|x| x.to_bits()).collect())
            .collect()
    }

    /// Types described at tag time come after the trained ones, whose vectors stay as they were
    /// computed once; a trained type given again unchanged is skipped, changed is refused.
    #[test]
    fn described_types_extend_the_cached_vectors() {
        let mut tagger = tagger();
        let before = rows(&tagger.vectors.span);
        let added = tagger
            .add_types(&[described("COLOR", "navy blue"), described("GENDER", "men")])
            .unwrap();
        assert_eq!(added, 1);
        let names: Vec<&str> = tagger.types().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["COLOR", "TYPE", "GENDER"]);
        let after = rows(&tagger.vectors.span);
        assert_eq!(after.len(), 3);
        assert_eq!(after[..2], before[..]);
        // The new type's vector is its description's, as if it had been there from the start.
        let alone = type_vectors(
            &tagger.model,
            &tagger.tokenizer,
            &[described("GENDER", "men")],
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(after[2], rows(&alone.span)[0]);
        let e = tagger
            .add_types(&[described("TYPE", "roadster")])
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("`TYPE` is already described otherwise"),
            "{e}"
        );
        assert_eq!(tagger.types().len(), 3);
    }

    /// Entities are slices of the text at their character offsets, one tag per word.
    #[test]
    fn extract_and_tags_index_the_input() {
        let tagger = tagger();
        let texts = ["Roadster  men navy blue shirt", "shirt"];
        for tagged in tagger.extract(&texts, 8).unwrap() {
            let chars: Vec<char> = tagged.title.chars().collect();
            for e in &tagged.entities {
                assert_eq!(e.text, chars[e.start..e.end].iter().collect::<String>());
            }
            assert!(!tagged.truncated);
        }
        let words = vec![vec!["roadster", "men", "navy"], vec!["shirt"]];
        let tags = tagger.predict_tags(&words, 8).unwrap();
        assert_eq!(tags.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
        // Past the encoder's 16 positions the words are cut: tagged O, the text marked truncated.
        let long = vec!["shirt"; 20];
        let view = tagger.view();
        let (found, cut) = &view.predict_words(std::slice::from_ref(&long), 8).unwrap()[0];
        assert!(*cut && found.iter().all(|s| s.span.end <= 14));
        assert_eq!(tagger.predict_tags(&[long], 8).unwrap()[0].len(), 20);
        assert!(tagger.extract(&[&"shirt ".repeat(20)], 8).unwrap()[0].truncated);
    }
}
