//! The crate's one error type: which input was wrong (config, weights, tokenizer, labels, task), with
//! the source named in the message, or a tensor error from candle.
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
    /// The method a model names is not one this build has.
    #[error("task: {0}")]
    Task(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
