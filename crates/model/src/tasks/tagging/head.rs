//! The tagging head: a linear token classifier over the encoder's hidden states. It owns only its
//! own parameters; the encoder is passed in.
use candle_core::{Result, Tensor};

use crate::nn::{Dense, Mode, Weights};

/// Linear token classification over the encoder's hidden states (BIO tags per sub-word; training
/// and decoding read the first sub-word of each word).
pub struct TokenClassifier {
    linear: Dense,
    dropout: f32,
}

impl TokenClassifier {
    pub fn load<'a>(
        hidden: usize,
        labels: usize,
        dropout: f32,
        weights: impl Into<Weights<'a>>,
    ) -> Result<Self> {
        Ok(Self {
            linear: weights.into().dense(hidden, labels)?,
            dropout,
        })
    }

    /// True when the weights are block-quantized (loaded from a quantized export).
    pub fn is_quantized(&self) -> bool {
        self.linear.is_quantized()
    }

    /// `(batch, seq, hidden)` -> `(batch, seq, labels)` logits.
    pub fn forward(&self, hidden: &Tensor, mode: &Mode) -> Result<Tensor> {
        self.linear.forward(&mode.dropout(hidden, self.dropout)?)
    }
}
