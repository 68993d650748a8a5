//! Task heads over the shared encoder. Each head owns only its own parameters; the encoder is
//! passed in, so SpERT.MT and BINDER heads can sit beside this one without touching it.
use candle_core::{Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::layers::{apply_linear, Mode};
use candle_nn::linear;

/// Linear token classification over the encoder's hidden states (BIO tags per sub-word; training
/// and decoding read the first sub-word of each word).
pub struct TokenClassifier {
    linear: Linear,
    dropout: f32,
}

impl TokenClassifier {
    pub fn load(hidden: usize, labels: usize, dropout: f32, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear: linear(hidden, labels, vb)?,
            dropout,
        })
    }

    /// `(batch, seq, hidden)` -> `(batch, seq, labels)` logits.
    pub fn forward(&self, hidden: &Tensor, mode: &Mode) -> Result<Tensor> {
        apply_linear(&self.linear, &mode.dropout(hidden, self.dropout)?)
    }
}
