//! Sentences as sub-words, and what one training step draws from a document.
//!
//! A sentence's words are tokenized as pre-split input and laid out as SpERT's reader does:
//! `[CLS]`, each word's sub-words in order, `[SEP]`; a word the tokenizer turns into nothing
//! becomes one `[UNK]`, so every word, and so every span, has at least one sub-word. A word span
//! `[s, e)` covers the sub-words from the first of word `s` to the last of word `e - 1`.
//!
//! Nothing is cut: a sentence longer than the encoder's positions is reported ([`TooLong`]) by
//! [`SpanExample::from_documents`] and refused by inference. (SpERT cuts nothing either; on
//! CoNLL04 no sentence comes near BERT's 512 positions.)
use std::ops::Range;

use multitag_core::relations::{
    train_sample, Document, EntitySample, RelationSample, SamplingConfig, WordSpan,
};
use multitag_core::SplitMix64;

use crate::error::ModelError;
use crate::tokenize::WordTokenizer;

/// A sentence's sub-word ids (`[CLS] ... [SEP]`) and each word's range in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubwordSentence {
    pub ids: Vec<u32>,
    pub words: Vec<Range<usize>>,
}

/// A sentence with more sub-words than the encoder has positions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{subwords} sub-words with [CLS] and [SEP], more than the encoder's {max} positions")]
pub struct TooLong {
    pub subwords: usize,
    pub max: usize,
}

impl SubwordSentence {
    /// Tokenizes pre-split `words` (see the module doc). Errors only for a tokenizer without the
    /// special tokens or one that fails; length is checked by [`Self::check_fits`].
    pub fn encode(tokenizer: &WordTokenizer, words: &[&str]) -> Result<Self, ModelError> {
        let tok = tokenizer.tokenizer();
        let special = |name: &str| {
            tok.token_to_id(name)
                .ok_or_else(|| ModelError::Tokenizer(format!("the vocabulary has no {name} token")))
        };
        let (cls, sep, unk) = (special("[CLS]")?, special("[SEP]")?, special("[UNK]")?);
        let encoding = tok
            .encode(words.to_vec(), false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let mut per_word: Vec<Vec<u32>> = vec![Vec::new(); words.len()];
        for (&id, word) in encoding.get_ids().iter().zip(encoding.get_word_ids()) {
            if let Some(w) = word.and_then(|w| per_word.get_mut(w as usize)) {
                w.push(id);
            }
        }
        let mut ids = vec![cls];
        let mut ranges = Vec::with_capacity(words.len());
        for sub in per_word {
            let start = ids.len();
            if sub.is_empty() {
                ids.push(unk);
            } else {
                ids.extend(sub);
            }
            ranges.push(start..ids.len());
        }
        ids.push(sep);
        Ok(SubwordSentence { ids, words: ranges })
    }

    /// `Err` when the sentence has more than `max` sub-words.
    pub fn check_fits(&self, max: usize) -> Result<(), TooLong> {
        if self.ids.len() > max {
            return Err(TooLong {
                subwords: self.ids.len(),
                max,
            });
        }
        Ok(())
    }

    /// The sub-words of a word span (non-empty, inside the sentence).
    pub fn subwords(&self, span: WordSpan) -> Range<usize> {
        self.words[span.start].start..self.words[span.end - 1].end
    }
}

/// A training sentence: its sub-words and its gold document (word indices).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanExample {
    pub sentence: SubwordSentence,
    pub document: Document,
}

/// What one step trains on for one sentence: the sampled spans ([`train_sample`]: gold first,
/// then negatives, each with its class and IoU target) with their sub-word ranges, and the
/// sampled pairs (indices into `entities`; positives first) with their multi-hot targets.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanSample {
    pub entities: Vec<EntitySample>,
    pub subwords: Vec<Range<usize>>,
    pub relations: Vec<RelationSample>,
    /// `relations.len()` rows of one 0/1 per relation type.
    pub relation_targets: Vec<f32>,
}

/// What [`SpanExample::from_documents`] made of a documents file, as `DocumentRead` reports it.
#[derive(Debug, Default)]
pub struct SpanExamples {
    pub examples: Vec<SpanExample>,
    /// Each document left out: its index in the file, and its length.
    pub too_long: Vec<(usize, TooLong)>,
}

impl SpanExample {
    /// The examples of `documents` that fit `max_positions` sub-words; the others are reported.
    pub fn from_documents(
        tokenizer: &WordTokenizer,
        documents: &[Document],
        max_positions: usize,
    ) -> Result<SpanExamples, ModelError> {
        let mut examples = Vec::with_capacity(documents.len());
        let mut too_long = Vec::new();
        for document in documents {
            let words: Vec<&str> = document.tokens.iter().map(String::as_str).collect();
            let sentence = SubwordSentence::encode(tokenizer, &words)?;
            match sentence.check_fits(max_positions) {
                Ok(()) => examples.push(SpanExample {
                    sentence,
                    document: document.clone(),
                }),
                Err(e) => too_long.push((document.index, e)),
            }
        }
        Ok(SpanExamples { examples, too_long })
    }

    /// A fresh training sample, its negatives drawn from `rng`.
    pub fn sample(
        &self,
        config: &SamplingConfig,
        relation_types: usize,
        rng: &mut SplitMix64,
    ) -> SpanSample {
        let sample = train_sample(&self.document, config, rng);
        let subwords = sample
            .entities
            .iter()
            .map(|e| self.sentence.subwords(e.span))
            .collect();
        let mut relation_targets = vec![0.0; sample.relations.len() * relation_types];
        for (row, r) in sample.relations.iter().enumerate() {
            for &ty in &r.types {
                relation_targets[row * relation_types + ty] = 1.0;
            }
        }
        SpanSample {
            entities: sample.entities,
            subwords,
            relations: sample.relations,
            relation_targets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::relations::fixtures;

    #[test]
    fn words_map_to_their_subwords() {
        let t = fixtures::tokenizer();
        let s = SubwordSentence::encode(&t, &["John", "acme-corp", " ", "."]).unwrap();
        // [CLS] john acme - corp [UNK] . [SEP]: the blank word has no sub-word, so [UNK].
        assert_eq!(s.ids, [1, 4, 8, 9, 10, 3, 11, 2]);
        assert_eq!(s.words, [1..2, 2..5, 5..6, 6..7]);
        assert_eq!(s.subwords(WordSpan::new(1, 3)), 2..6);
        assert_eq!(s.check_fits(8), Ok(()));
        assert_eq!(
            s.check_fits(7),
            Err(TooLong {
                subwords: 8,
                max: 7
            })
        );
    }

    #[test]
    fn long_sentences_are_reported_not_cut() {
        let docs = fixtures::documents();
        // 6 words, 8 sub-words + 2 specials; 5 words, 5 + 2.
        let SpanExamples { examples, too_long } =
            SpanExample::from_documents(&fixtures::tokenizer(), &docs, 9).unwrap();
        assert_eq!(examples.len(), 1);
        assert_eq!(examples[0].document, docs[1]);
        assert_eq!(
            too_long,
            [(
                0,
                TooLong {
                    subwords: 10,
                    max: 9
                }
            )]
        );
    }

    #[test]
    fn a_sample_has_subword_ranges_and_multi_hot_targets() {
        let example = &fixtures::examples()[0];
        let config = SamplingConfig::default();
        let s = example.sample(&config, 2, &mut SplitMix64::new(5));
        // Every span of up to 10 words of 6: 21, the 2 gold ones first.
        assert_eq!(s.entities.len(), 21);
        assert_eq!(s.subwords[..2], [1..3, 5..8]);
        for (e, r) in s.entities.iter().zip(&s.subwords) {
            assert_eq!(*r, example.sentence.subwords(e.span));
        }
        // Work_For from 0 to 1, and the reverse as a negative.
        assert_eq!(s.relations.len(), 2);
        assert_eq!((s.relations[0].head, s.relations[0].tail), (0, 1));
        assert_eq!(s.relation_targets, [1.0, 0.0, 0.0, 0.0]);
        assert_eq!(s, example.sample(&config, 2, &mut SplitMix64::new(5)));
        assert_ne!(
            s.entities,
            example.sample(&config, 2, &mut SplitMix64::new(6)).entities
        );
    }
}
