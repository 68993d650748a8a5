//! Models: the shared BERT encoder and its config. Every task (see [`crate::tasks`]) puts its head
//! on this one encoder.
pub mod bert;
pub mod config;

pub use bert::{additive_attention_mask, mean_pool, BertEncoder};
pub use config::BertConfig;
