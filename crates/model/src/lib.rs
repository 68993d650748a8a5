//! multitag-model: the BERT encoder (trainable and inference paths), heads, losses and the Tagger.
//! Pure computation over bytes and tensors, no file system, so the same code runs natively and in
//! the browser.
pub mod activations;
pub mod attention;
pub mod config;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(test)]
#[path = "cuda/host/check.rs"]
mod cuda_kernels_on_host;
pub mod encoder;
pub mod fused;
pub mod gguf;
pub mod heads;
pub mod int8;
pub mod layers;
pub mod losses;
pub mod ner;
mod strided;
pub mod tagger;
#[cfg(test)]
mod testing;
pub mod tokenize;
pub mod weights;

pub use config::BertConfig;
pub use encoder::{mean_pool, BertEncoder};
pub use gguf::{GgufFile, Quant};
pub use layers::{Dense, DenseCompute, DropoutDraw, DropoutRng, EmbeddingTable, Mode};
pub use losses::{info_nce_loss, token_cross_entropy, triplet_loss, TripletForm};
pub use ner::NerModel;
pub use tagger::{TaggedTitle, Tagger, WordPrediction};
pub use tokenize::{collate, collate_to, pad_rows, WordEncoding, WordTokenizer};
pub use weights::Weights;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model config: {0}")]
    Config(String),
    #[error("model weights: {0}")]
    Weights(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("labels: {0}")]
    Labels(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
