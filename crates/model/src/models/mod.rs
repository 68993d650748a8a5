//! Models: the shared BERT encoder. Every task (see [`crate::tasks`]) puts its head on this one
//! encoder.
pub mod bert;

pub use crate::config::BertConfig;
pub use bert::{additive_attention_mask, mean_pool, BertEncoder, EncoderBackend};
