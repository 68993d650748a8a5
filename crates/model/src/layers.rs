//! Building blocks whose training and inference paths differ. candle-nn's fused layer-norm and
//! softmax kernels have no backward pass, and its dropout draws from an unseedable CPU RNG, so the
//! training path uses primitive (differentiable) ops and our own seeded dropout masks, while the
//! inference path keeps the fused kernels for speed.
use std::cell::Cell;

#[cfg(test)]
use candle_core::Device;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// How a forward pass runs: inference (fused ops, no dropout) or training (differentiable ops and
/// dropout drawn from a seeded generator, so a CPU run is reproducible for a given seed).
pub enum Mode<'a> {
    Infer,
    Train(&'a DropoutRng),
}

impl Mode<'_> {
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train(_))
    }

    /// Inverted dropout: zero with probability `p`, scale the rest by 1/(1-p).
    pub fn dropout(&self, xs: &Tensor, p: f32) -> Result<Tensor> {
        match self {
            Mode::Train(rng) if p > 0.0 => {
                let mask = rng.mask(xs.elem_count(), p);
                let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?.to_dtype(xs.dtype())?;
                xs * mask
            }
            _ => Ok(xs.clone()),
        }
    }

    pub fn layer_norm(&self, ln: &LayerNorm, xs: &Tensor) -> Result<Tensor> {
        if self.is_train() {
            ln.forward_differentiable(xs)
        } else {
            ln.forward_fused(xs)
        }
    }

    pub fn softmax_last_dim(&self, xs: &Tensor) -> Result<Tensor> {
        if self.is_train() {
            candle_nn::ops::softmax(xs, D::Minus1)
        } else {
            candle_nn::ops::softmax_last_dim(xs)
        }
    }
}

/// A splitmix64 stream: tiny, seedable, identical on every platform (WASM included).
pub struct DropoutRng {
    state: Cell<u64>,
}

impl DropoutRng {
    pub fn new(seed: u64) -> Self {
        Self {
            state: Cell::new(seed ^ 0x9E37_79B9_7F4A_7C15),
        }
    }

    fn next_u64(&self) -> u64 {
        let s = self.state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A keep-mask already scaled by 1/(1-p). Each u64 yields four 16-bit draws, which is ample
    /// resolution for a dropout probability and four times cheaper than one draw per element.
    fn mask(&self, n: usize, p: f32) -> Vec<f32> {
        let threshold = (p as f64 * 65536.0) as u32;
        let keep = 1.0 / (1.0 - p);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let r = self.next_u64();
            for k in 0..4 {
                if out.len() == n {
                    break;
                }
                let draw = ((r >> (16 * k)) & 0xFFFF) as u32;
                out.push(if draw < threshold { 0.0 } else { keep });
            }
        }
        out
    }
}

/// Layer normalization over the last dimension with learned scale and shift.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn load(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?;
        let bias = vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.0))?;
        Ok(Self { weight, bias, eps })
    }

    pub fn forward_fused(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(&xs.contiguous()?, &self.weight, &self.bias, self.eps as f32)
    }

    /// Statistics in f32 whatever the activation dtype, so half-precision training stays stable.
    pub fn forward_differentiable(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        let xs = xs.to_dtype(DType::F32)?;
        let mean = xs.mean_keepdim(D::Minus1)?;
        let centered = xs.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed
            .to_dtype(dtype)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// Applies a dense layer to a `(batch, seq, in)` tensor through one 2-D matmul, which is faster on
/// CPU than candle's batched broadcast matmul and has the same gradient.
pub fn apply_linear(layer: &candle_nn::Linear, xs: &Tensor) -> Result<Tensor> {
    match xs.dims() {
        [b, t, d] => {
            let flat = xs.reshape((b * t, *d))?;
            let out = layer.forward(&flat)?;
            let out_dim = out.dim(1)?;
            out.reshape((*b, *t, out_dim))
        }
        _ => layer.forward(xs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_mask_is_seeded_and_has_expected_rate() {
        let a = DropoutRng::new(7).mask(40_000, 0.1);
        let b = DropoutRng::new(7).mask(40_000, 0.1);
        assert_eq!(a, b);
        let dropped = a.iter().filter(|&&x| x == 0.0).count() as f64 / a.len() as f64;
        assert!((dropped - 0.1).abs() < 0.01, "{dropped}");
        assert_ne!(a, DropoutRng::new(8).mask(40_000, 0.1));
    }

    #[test]
    fn fused_and_differentiable_layer_norm_agree() -> Result<()> {
        let dev = Device::Cpu;
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
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
