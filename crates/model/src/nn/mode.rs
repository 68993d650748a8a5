//! How a forward pass runs: inference (candle's fused ops, no dropout) or training
//! (differentiable ops and dropout drawn from a seeded generator, so a CPU run is reproducible for
//! a given seed). candle-nn's fused layer-norm and softmax kernels have no backward pass and its
//! dropout draws from an unseedable CPU RNG; every layer asks its [`Mode`] instead of choosing.
use candle_core::{DType, Result, Tensor};

use super::embedding::RowGradients;
use super::norm::LayerNorm;
use crate::kernels::{self, DropoutDraw, DropoutRng};

/// How a forward pass runs: inference (fused ops, no dropout) or training (differentiable ops and
/// dropout drawn from a seeded generator, so a CPU run is reproducible for a given seed).
pub enum Mode<'a> {
    Infer,
    Train(&'a DropoutRng),
    /// Training whose word-embedding lookups read their rows through [`RowGradients`], so the
    /// table's gradient comes back as the rows a batch used rather than a dense table.
    TrainRows(&'a DropoutRng, &'a RowGradients),
}

impl Mode<'_> {
    pub fn is_train(&self) -> bool {
        !matches!(self, Mode::Infer)
    }

    fn rng(&self) -> Option<&DropoutRng> {
        match self {
            Mode::Infer => None,
            Mode::Train(rng) | Mode::TrainRows(rng, _) => Some(rng),
        }
    }

    /// Where lookups record the rows they read, if this pass does.
    pub fn row_gradients(&self) -> Option<&RowGradients> {
        match self {
            Mode::TrainRows(_, rows) => Some(rows),
            _ => None,
        }
    }

    /// One dropout draw of probability `p` for a fused kernel, where training with `p > 0`.
    pub fn dropout_draw(&self, p: f32) -> Option<DropoutDraw> {
        DropoutDraw::from_rng(self.rng()?, p)
    }

    /// Inverted dropout: zero with probability `p`, scale the rest by 1/(1-p).
    pub fn dropout(&self, xs: &Tensor, p: f32) -> Result<Tensor> {
        match self.rng() {
            Some(rng) if p > 0.0 && xs.device().is_cpu() => {
                let mask = rng.mask(xs.elem_count(), p);
                let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?.to_dtype(xs.dtype())?;
                xs * mask
            }
            Some(_) if p > 0.0 => kernels::dropout_on_device(xs, p),
            _ => Ok(xs.clone()),
        }
    }

    /// Whether layer norms of `xs` run our kernel: in training, and for f32 on the CPU, where
    /// candle's layer norm keeps its sums scalar (and its residual add is a pass of its own).
    /// Other inference (half precision, CUDA) takes candle's fused kernel.
    fn our_layer_norm(&self, xs: &Tensor) -> bool {
        self.is_train() || (xs.device().is_cpu() && xs.dtype() == DType::F32)
    }

    /// See [`Self::our_layer_norm`].
    pub fn layer_norm(&self, ln: &LayerNorm, xs: &Tensor) -> Result<Tensor> {
        if self.our_layer_norm(xs) {
            ln.forward_differentiable(xs)
        } else {
            ln.forward_fused(xs)
        }
    }

    /// `layer_norm(dropout(y) + residual)`, the end of a transformer sub-layer: one op
    /// ([`crate::kernels::residual_layer_norm`], which chooses its kernel or composes it) where
    /// [`Self::our_layer_norm`], else candle's fused layer norm over the sum.
    pub fn residual_layer_norm(
        &self,
        ln: &LayerNorm,
        y: &Tensor,
        residual: &Tensor,
        p: f32,
    ) -> Result<Tensor> {
        if self.our_layer_norm(y) {
            return ln.forward_residual(y, residual, self.dropout_draw(p));
        }
        ln.forward_fused(&(y + residual)?)
    }

    pub fn softmax_last_dim(&self, xs: &Tensor) -> Result<Tensor> {
        if self.is_train() {
            // In f32 whatever the activations, as autocast does: bf16 exponentials of attention
            // scores lose too much to train on.
            let dtype = xs.dtype();
            kernels::softmax_last_dim(&xs.to_dtype(DType::F32)?)?.to_dtype(dtype)
        } else {
            candle_nn::ops::softmax_last_dim(xs)
        }
    }
}
