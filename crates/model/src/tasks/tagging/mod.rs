//! Multi-task triplet NER (Siskind & Shah): BIO tagging of product titles by a linear token
//! classifier on the shared encoder, trained together with a loss that pulls each title's
//! mean-pooled embedding towards its own description.
//!
//! | module | stage |
//! |---|---|
//! | [`head`] | the token classifier |
//! | [`model`] | encoder + head under Hugging Face's `BertForTokenClassification` names; load from a checkpoint or an export |
//! | [`loss`] | the training examples and the loss ([`crate::tasks::Task`]) |
//! | [`tagger`] | decoding: strings to entities, and sentence embeddings |
//!
//! Evaluation (seqeval's strict IOB2 entity scores, exact match, retrieval) is
//! `multitag_core::metrics`, shared by every task that outputs entities.
pub mod head;
pub mod loss;
pub mod model;
pub mod tagger;

#[cfg(test)]
mod gguf_tests;

pub use head::TokenClassifier;
pub use loss::{anchor, DescriptionLoss, TaggingLoss, TitleExample};
pub use model::NerModel;
pub use tagger::{Tagger, TaggingSource, TaggingView, WordPrediction, DEFAULT_TITLE_TOKENS};
