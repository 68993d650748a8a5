//! BINDER (Zhang et al., ICLR 2023): named entities as a match between two encoders' vectors.
//! A text encoder gives every sub-word, and so every span, a vector; a type encoder reads each
//! entity type's description in words and gives the type a vector; a span is a mention of a type
//! when their cosine (times a learned scale) beats the type's score of `[CLS]`, a threshold each
//! sentence sets for itself. Types are inputs, not output rows, so a type described at tag time
//! is tagged with no retraining.
//!
//! As the reference code (microsoft/binder, `src/model.py`, `run_ner.py`, `src/utils.py`) does:
//! - **Two encoders** loaded from the same base model, separate weights, both trained. A type's
//!   vector is the type encoder's top-layer `[CLS]` over `[CLS] description [SEP]` (no pooler);
//!   every type's description is encoded at every training step, with gradients.
//! - **Heads**: single linear layers to 128 dimensions, no activation: start and end over each
//!   sub-word's state, span over `[h_i; h_j; width(j - i + 1)]` (the width in sub-words, a learned
//!   embedding of 128), and three for the type (start, end, span) over its `[CLS]`; dropout 0.1
//!   after each projection, then L2 normalisation. Scores are `exp(s) · cosine` with one learned
//!   log-scale `s` per kind, started at `ln(1 / 0.07)` and not clamped.
//! - **Losses** ([`BinderLoss`]): softmax contrastive losses over each sentence's candidates
//!   (`[CLS]`, the sub-words that start a word, those that end one, the word-aligned spans with
//!   `j >= i`; no width cap in training). For every (sentence, type) the threshold loss makes
//!   `[CLS]` beat the type's non-entity candidates; for every gold mention the NER loss makes it
//!   beat `[CLS]` and those same candidates (other mentions of its type are left out of its
//!   softmax, as they are out of the negatives). Each is `0.2 · start + 0.2 · end + 0.6 · span`,
//!   rows averaged; the total is `0.5 · ner + 0.5 · threshold`.
//! - **Decoding**: span scores only; a word-aligned span of at most 30 sub-words is kept when it
//!   scores strictly above its type's `(CLS, CLS)` span in the same sentence; flat data then
//!   keeps the best-scoring of overlapping spans, greedily, across types
//!   (`multitag_core::binder::decode`), nested data keeps them all.
//!
//! Our choices where the reference leaves one or does something we do not:
//! - **Masking is exact.** The reference adds `log(mask + tiny)` to masked scores; its configs
//!   train in fp16, where that is only -9.2, so pads and `i > j` spans keep some probability.
//!   We compute in f32 over the candidates alone, as the reference does in f32.
//! - **Sentences are encoded whole** (up to the encoder's positions), not cut into 128-token
//!   windows with a 16-token overlap: our data comes as sentences (IOB2 files, titles), so nothing
//!   is cut and no entity is lost at a window edge. The width embedding therefore has a row for
//!   every width the encoder can hold. As the reference drops training windows without a gold
//!   entity, training drops sentences without one.
//! - A span is `[h_i; h_j; w]` times one weight matrix; we apply the matrix's three column blocks
//!   to the start rows, end rows and widths and add them (the same numbers, without building the
//!   `2h + 128` concatenation for every candidate).
pub mod loss;
pub mod model;
pub mod tagger;

pub use loss::{BinderExample, BinderLoss};
pub use model::{BinderModel, BinderSettings, Candidates, TypeVectors};
pub use tagger::{encode_descriptions, BinderTagger, BinderView};
