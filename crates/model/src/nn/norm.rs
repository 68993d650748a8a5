//! Layer normalization over the last dimension with learned scale and shift: ours (with a backward
//! pass, statistics in f32) for training and for f32 inference on the CPU, candle's fused kernel
//! for other inference (half precision, CUDA).
use candle_core::{DType, Result, Tensor};

use super::weights::Weights;
use crate::kernels::{self, DropoutDraw};

/// Layer normalization over the last dimension with learned scale and shift.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` (initialised to 1 and 0 when trainable variables are created).
    pub fn load<'a>(size: usize, eps: f64, weights: impl Into<Weights<'a>>) -> Result<Self> {
        let weights = weights.into();
        let weight = weights.vector(size, "weight", candle_nn::Init::Const(1.0))?;
        let bias = weights.vector(size, "bias", candle_nn::Init::Const(0.0))?;
        Ok(Self { weight, bias, eps })
    }

    pub fn forward_fused(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        let xs = xs.to_dtype(self.weight.dtype())?.contiguous()?;
        candle_nn::ops::layer_norm(&xs, &self.weight, &self.bias, self.eps as f32)?.to_dtype(dtype)
    }

    /// Statistics in f32 whatever the activation dtype, so half-precision training stays stable.
    pub fn forward_differentiable(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        let xs = xs.to_dtype(DType::F32)?;
        kernels::layer_norm(&xs, &self.weight, &self.bias, self.eps)?.to_dtype(dtype)
    }

    /// `layer_norm(dropout(y) + residual)` for training, in f32 like [`Self::forward_differentiable`].
    pub fn forward_residual(
        &self,
        y: &Tensor,
        residual: &Tensor,
        dropout: Option<DropoutDraw>,
    ) -> Result<Tensor> {
        kernels::residual_layer_norm(y, residual, &self.weight, &self.bias, self.eps, dropout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fused_and_differentiable_layer_norm_agree() -> Result<()> {
        let dev = Device::Cpu;
        let vm = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let ln = LayerNorm::load(6, 1e-12, vb)?;
        let xs = Tensor::new(
            &[[1f32, 2., 3., 4., 5., 9.], [0., -1., 2., 0.5, 3., -4.]],
            &dev,
        )?;
        let a = ln.forward_fused(&xs)?;
        let b = ln.forward_differentiable(&xs)?;
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }
}
