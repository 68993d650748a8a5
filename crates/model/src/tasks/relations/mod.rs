//! Span-based joint entity and relation extraction: SpERT (Eberts and Ulges 2020) and SpERT.MT
//! (Xue and Lu), the network side. Everything over words (documents, candidate spans, negative
//! sampling, IoU targets, decoding, SpERT's evaluator) is `multitag_core::relations`; this module
//! maps words to sub-words, scores spans and pairs on the shared encoder, and trains them.
//!
//! | module | stage |
//! |---|---|
//! | [`example`] | a sentence as sub-words with each word's range; a document's training sample |
//! | [`head`] | max-pooling over sub-word rows, the span and relation classifiers |
//! | [`model`] | encoder + width embedding + both classifiers, and the settings ([`SpanSettings`]) |
//! | [`loss`] | SpERT's loss and SpERT.MT's additions ([`crate::tasks::Task`]) |
//! | [`extract`](mod@extract) | inference: every span, then pairs of predicted entities, decoded |
//! | [`extractor`] | a trained model at inference: words or raw text to entities and relations |
//!
//! SpERT, as its code (lavis-nlp/spert, `models.py`, `loss.py`, `sampling.py`) does it:
//! - a word is its sub-words (a word with none becomes `[UNK]`), the sentence `[CLS] ... [SEP]`;
//! - a span is the max-pool of its sub-words' top-layer states, its width in words embedded
//!   (25 dimensions, 100 rows), and the `[CLS]` state: `[CLS] ⊕ pool ⊕ width`, dropout 0.1, one
//!   linear layer to `1 + entity types` classes (0 "none"), softmax;
//! - a pair (head, tail) is the max-pool of the sub-words strictly between the two spans (zero
//!   when they touch or overlap) ⊕ head pool ⊕ tail pool ⊕ head width ⊕ tail width, dropout 0.1,
//!   one linear layer to the relation types, a sigmoid each;
//! - training: cross-entropy averaged over the sampled spans of the batch (gold and up to 100
//!   negatives a sentence), binary cross-entropy averaged over the sampled pairs and the relation
//!   types (gold pairs, multi-hot, and up to 100 unrelated gold pairs); the relation term is zero
//!   for a batch without pairs. Classifier weights start at N(0, 0.02) with zero biases (BERT's
//!   initialisation, which SpERT applies to its own layers too).
//!
//! SpERT.MT's three additions, each a switch of [`SpanSettings`] so that an ablation can turn any
//! of them off (all off is SpERT exactly; [`SpanSettings::spert`], [`SpanSettings::spert_mt`]):
//! 1. **Multi-task against negative samples** (`span_aux`, `pair_aux`): a binary head beside each
//!    classifier, on the same (dropped-out) representation: entity vs non-entity for every
//!    sampled span, related vs unrelated for every sampled pair, binary cross-entropy averaged
//!    like the main terms, each weighted (1.0). The negatives dominate both samples; a task that
//!    only separates them from the positives gives the shared representation a signal that is
//!    not divided among the types. The binary targets are hard (gold span or not), so that this
//!    addition and the next stay separable in an ablation. The heads are training-only: decoding
//!    is SpERT's, so scores stay comparable; gating predictions by them would be an extension.
//! 2. **IoU-based boundaries** (`iou_boundaries`): a third head beside the span classifier's
//!    classes, on the same representation, learns each sampled span's IoU with the gold entity it
//!    overlaps most (`multitag_core::relations::iou_target`; 1 for a gold span, 0 for one that
//!    overlaps none) by binary cross-entropy on its logit, weighted (`iou_weight`, 1.0). At
//!    decoding, spans classified as the same type that overlap are resolved to the one with the
//!    highest predicted IoU (`multitag_core::relations::entity_classes`). Why this form: a near
//!    miss (a name with a word too many or too few) is the error span enumeration makes, and SpERT
//!    trains it as plainly "none", like a span far from any entity; the head learns how close a
//!    span's boundaries are, and decoding uses it where the classifier alone keeps two readings
//!    of one entity. The classes keep SpERT's hard targets. Measured and dropped: the IoU as a
//!    soft target of the classes themselves (`0.5·IoU` on the overlapped type): the classifier
//!    then scored near misses as half-entities and decoded many of them (CoNLL04, MiniLM-L6: 1,484
//!    predicted entities for 1,079 gold, entity F1 71.4 against SpERT's 83.5).
//! 3. **Enriched semantic input** (`enriched`): each argument's entity-class distribution (the
//!    entity classifier's softmax, `1 + types` values) is appended to the pair representation,
//!    detached. Why detached: pairs are built from gold entities in training and from predicted
//!    ones at inference; letting the relation loss move the entity classifier would make it a
//!    second entity loss on gold spans only, pulling the distributions it learns from the
//!    relation data rather than from the span samples, and the relation classifier should learn
//!    to read the distribution the entity classifier actually produces at inference.
//!
//! Other choices:
//! - Sentences longer than the encoder's positions are never cut: [`SpanExample::from_documents`]
//!   reports them ([`TooLong`]) and [`extract`](extract::extract) refuses them.
//! - A span wider (in words) than the width table (100 rows) reads the last row; SpERT would fail.
//!   Only gold spans can be that wide (candidates stop at `max_span_words`).
//! - Negatives are drawn when a batch's loss is computed, from a [`SplitMix64`] seeded by the
//!   training loop's `draw`, so every visit of a sentence gets new negatives (as SpERT) and a seed
//!   gives one run.
//!
//! [`SplitMix64`]: multitag_core::SplitMix64
pub mod example;
pub mod extract;
pub mod extractor;
pub mod head;
pub mod loss;
pub mod model;

pub use example::{SpanExample, SpanExamples, SpanSample, SubwordSentence, TooLong};
pub use extract::{extract, ExtractConfig};
pub use extractor::{FoundRelation, SpanExtractor, TextRelations};
pub use head::{between, PooledRows, RelationClassifier, SpanClassifier};
pub use loss::{boundary_target, RelationLoss};
pub use model::{PairScores, SpanModel, SpanRef, SpanScores, SpanSettings};

#[cfg(test)]
pub(crate) mod fixtures {
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};
    use multitag_core::relations::{read_documents, read_types, Document, TypeSet};

    use super::*;
    use crate::config::BertConfig;
    use crate::tokenize::WordTokenizer;

    /// A word-level tokenizer; `-` is a token of its own, so `acme-corp` is three sub-words.
    pub const TOKENIZER: &str = r#"{"version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [], "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "unk_token": "[UNK]", "vocab": {"[PAD]": 0, "[CLS]": 1,
            "[SEP]": 2, "[UNK]": 3, "john": 4, "smith": 5, "works": 6, "for": 7, "acme": 8,
            "-": 9, "corp": 10, ".": 11, "mary": 12, "lives": 13, "in": 14, "paris": 15}}}"#;

    pub const TYPES: &str = r#"{"entities": {"Loc": {}, "Org": {}, "Peop": {}},
        "relations": {"Work_For": {"symmetric": false}, "Live_In": {"symmetric": false}}}"#;

    pub const DOCUMENTS: &str = r#"[
        {"tokens": ["John", "Smith", "works", "for", "acme-corp", "."],
         "entities": [{"type": "Peop", "start": 0, "end": 2}, {"type": "Org", "start": 4, "end": 5}],
         "relations": [{"type": "Work_For", "head": 0, "tail": 1}]},
        {"tokens": ["Mary", "lives", "in", "Paris", "."],
         "entities": [{"type": "Peop", "start": 0, "end": 1}, {"type": "Loc", "start": 3, "end": 4}],
         "relations": [{"type": "Live_In", "head": 0, "tail": 1}]}]"#;

    pub fn types() -> TypeSet {
        read_types("types.json", TYPES).unwrap()
    }

    pub fn documents() -> Vec<Document> {
        read_documents("docs.json", DOCUMENTS, &types())
            .unwrap()
            .documents
    }

    pub fn tokenizer() -> WordTokenizer {
        WordTokenizer::from_bytes("tokenizer.json", TOKENIZER.as_bytes()).unwrap()
    }

    pub fn examples() -> Vec<SpanExample> {
        let read = SpanExample::from_documents(&tokenizer(), &documents(), 32).unwrap();
        assert!(read.too_long.is_empty());
        read.examples
    }

    pub fn config(dropout: f32) -> BertConfig {
        let json = format!(
            r#"{{"vocab_size": 20, "hidden_size": 16, "num_hidden_layers": 2,
                "num_attention_heads": 4, "intermediate_size": 32, "hidden_act": "gelu",
                "hidden_dropout_prob": {dropout}, "attention_probs_dropout_prob": {dropout},
                "max_position_embeddings": 32, "type_vocab_size": 2}}"#
        );
        BertConfig::from_json("tiny", &json).unwrap()
    }

    /// Small widths so that tests stay fast.
    pub fn settings(dropout: f32) -> SpanSettings {
        SpanSettings {
            width_dim: 4,
            width_rows: 12,
            dropout,
            ..SpanSettings::spert_mt()
        }
    }

    /// A model with fixed pseudo-random weights in a `VarMap`.
    pub fn model(settings: SpanSettings, dropout: f32) -> (VarMap, SpanModel) {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = SpanModel::load(&config(dropout), types(), settings, vb).unwrap();
        crate::testing::make_deterministic(&varmap).unwrap();
        (varmap, model)
    }

    /// A splitmix64 stream for the loss's draws.
    pub fn draws(seed: u64) -> impl FnMut(usize) -> usize {
        let mut rng = multitag_core::SplitMix64::new(seed);
        move |n| rng.below(n as u64) as usize
    }
}
