//! multitag-model: the BERT encoder shared by every method, the methods' heads, losses and
//! decoding, and the exported model format. Pure computation over bytes and tensors, no file
//! system, so the same code runs natively and in the browser.
//!
//! Layers, each importing only from those above it in this list (candle's split of core ops, nn
//! and models):
//!
//! | module | what | where a new one goes |
//! |---|---|---|
//! | [`kernels`] | ops: CPU fused kernels with backward passes, attention, GELU, int8, CUDA; the kernel choice | a new kernel |
//! | [`error`], [`config`] | the error type; a BERT checkpoint's `config.json` | |
//! | [`gguf`], [`tokenize`] | the exported file format; sub-word tokenization and batching | a new format |
//! | [`nn`] | layers (dense, layer norm, embeddings), the train/infer [`Mode`], parameter sources, losses | a new layer or loss |
//! | [`models`] | the BERT encoder | a new encoder |
//! | [`tasks`] | one module per method: head, loss, decoding, behind [`tasks::Task`] (training) and [`tasks::Predictor`] (inference); sentence embeddings of any encoder behind [`tasks::Embedder`] | a new method |
pub mod config;
pub mod error;
pub mod gguf;
pub mod kernels;
pub mod models;
pub mod nn;
pub mod tasks;
#[cfg(test)]
mod testing;
pub mod tokenize;

#[cfg(test)]
#[path = "kernels/cuda/host/check.rs"]
mod cuda_kernels_on_host;

pub use error::ModelError;
pub use gguf::{GgufFile, Quant};
pub use kernels::{DropoutDraw, DropoutRng};
pub use models::{mean_pool, BertConfig, BertEncoder, EncoderBackend};
pub use multitag_core::TaggedTitle;
pub use nn::{
    info_nce_loss, token_cross_entropy, triplet_loss, Dense, DenseCompute, EmbeddingTable, Mode,
    RowGradients, SparseRows, TripletForm, Weights,
};
pub use tasks::embedding::EncoderEmbedder;
pub use tasks::tagging::{NerModel, Tagger, WordPrediction};
pub use tasks::{
    predictor_from_gguf, predictor_from_tensors, Embedder, Losses, Predictor, Task, TaskKind,
};
pub use tokenize::{
    collate, collate_to, pad_rows, WordEncoding, WordTokenizer, DEFAULT_TEXT_TOKENS,
};
