//! Building blocks whose training and inference paths differ. candle-nn's fused layer-norm and
//! softmax kernels have no backward pass, and its dropout draws from an unseedable CPU RNG, so the
//! training path uses differentiable ops (our fused CPU kernels with backward passes in
//! [`crate::fused`], primitive ops elsewhere) and our own seeded dropout masks, while the inference
//! path keeps candle's fused kernels.
//!
//! Weight matrices are [`Dense`] layers: a float `candle_nn::Linear` (the only kind training ever
//! builds), frozen f32 weights, or a quantized `QMatMul` plus an f32 bias (the last two loaded
//! from an exported GGUF model), behind one `forward`, so the encoder has a single code path.
use std::cell::Cell;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
#[cfg(test)]
use candle_core::Device;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Embedding, Linear};

use crate::int8::Int8Matrix;
use crate::weights::Weights;

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
            Mode::Train(rng) if p > 0.0 && xs.device().is_cpu() => {
                let mask = rng.mask(xs.elem_count(), p);
                let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?.to_dtype(xs.dtype())?;
                xs * mask
            }
            // On an accelerator the mask is drawn there (seeded through `Device::set_seed`):
            // building millions of draws on the host and copying them over each step would
            // cost more than the step itself.
            Mode::Train(_) if p > 0.0 => {
                let draws = Tensor::rand(0f32, 1f32, xs.shape(), xs.device())?;
                let keep = draws.ge(p as f64)?.to_dtype(xs.dtype())?;
                xs * (keep * (1.0 / (1.0 - p as f64)))?
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

    /// `layer_norm(dropout(y) + residual)`, the end of a transformer sub-layer: one fused kernel
    /// in training on the CPU (and on CUDA with its kernels on), composed from the steps elsewhere.
    pub fn residual_layer_norm(
        &self,
        ln: &LayerNorm,
        y: &Tensor,
        residual: &Tensor,
        p: f32,
    ) -> Result<Tensor> {
        if self.is_train() && crate::fused::kernel_applies(&[y, residual, &ln.weight, &ln.bias]) {
            let dropout = DropoutDraw::from_mode(self, p);
            return crate::fused::residual_layer_norm(
                y, residual, &ln.weight, &ln.bias, ln.eps, dropout,
            );
        }
        self.layer_norm(ln, &(self.dropout(y, p)? + residual)?)
    }

    pub fn softmax_last_dim(&self, xs: &Tensor) -> Result<Tensor> {
        if self.is_train() {
            // In f32 whatever the activations, as autocast does: bf16 exponentials of attention
            // scores lose too much to train on.
            let dtype = xs.dtype();
            crate::fused::softmax_last_dim(&xs.to_dtype(DType::F32)?)?.to_dtype(dtype)
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

    /// Stream `index` of a family seeded by `seed`: kernels that draw masks in parallel give each
    /// task its own stream, so the masks do not depend on which thread ran what. Both are mixed
    /// first, as consecutive raw seeds would give overlapping splitmix streams.
    pub(crate) fn stream(seed: u64, index: u64) -> Self {
        Self::new(mix64(seed ^ mix64(index)))
    }

    fn next_u64(&self) -> u64 {
        let s = self.state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.state.set(s);
        mix64(s)
    }

    /// A keep-mask already scaled by 1/(1-p).
    fn mask(&self, n: usize, p: f32) -> Vec<f32> {
        let mut out = vec![0f32; n];
        self.fill_mask(&mut out, p);
        out
    }

    /// [`Self::mask`] into `out`. Each u64 yields four 16-bit draws, which is ample resolution for
    /// a dropout probability and four times cheaper than one draw per element.
    fn fill_mask(&self, out: &mut [f32], p: f32) {
        let threshold = (p as f64 * 65536.0) as u64;
        let keep = 1.0 / (1.0 - p);
        for group in out.chunks_mut(4) {
            let r = self.next_u64();
            for (k, value) in group.iter_mut().enumerate() {
                let draw = (r >> (16 * k)) & 0xFFFF;
                *value = if draw < threshold { 0.0 } else { keep };
            }
        }
    }
}

/// One dropout draw for a fused kernel: probability `p`, masks drawn from `seed`, one stream per
/// index (a row, or a sequence and head), so a kernel can draw in parallel and redraw the same mask
/// in its backward pass instead of keeping it.
#[derive(Clone, Copy, Debug)]
pub struct DropoutDraw {
    pub p: f32,
    pub seed: u64,
}

impl DropoutDraw {
    /// Draws from `rng` where training with `p > 0`; none otherwise.
    pub fn from_mode(mode: &Mode, p: f32) -> Option<Self> {
        match mode {
            Mode::Train(rng) if p > 0.0 => Some(Self {
                p,
                seed: rng.next_u64(),
            }),
            _ => None,
        }
    }

    /// The scaled keep-mask of `n` elements for `index`.
    pub(crate) fn keep_mask(&self, index: u64, n: usize) -> Vec<f32> {
        DropoutRng::stream(self.seed, index).mask(n, self.p)
    }

    /// [`Self::keep_mask`] into `out`.
    pub(crate) fn fill_keep_mask(&self, index: u64, out: &mut [f32]) {
        DropoutRng::stream(self.seed, index).fill_mask(out, self.p)
    }
}

/// splitmix64's output function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

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
        crate::fused::layer_norm(&xs, &self.weight, &self.bias, self.eps)?.to_dtype(dtype)
    }
}

/// How the dense layers of an exported (GGUF) model multiply. Quantization always shrinks the
/// download; this chooses what the weights look like in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DenseCompute {
    /// Dequantize each matrix to f32 once at load and multiply with the float GEMM. The default:
    /// on CPU and in WASM candle's quantized matmul (one dot product per output, each input row
    /// re-quantized per call) measured 2-4x slower than f32 for BERT-sized matrices.
    #[default]
    F32,
    /// Keep block-quantized matrices and multiply with candle's `QMatMul`: about a quarter of the
    /// memory, slower.
    Quantized,
    /// Round each matrix to int8 per output row and multiply with integer dot products
    /// ([`crate::int8`]): at most half the memory of f32, and faster where the float GEMM has no
    /// fused multiply-add (WASM) or the CPU multiplies bytes (x86-64 with AVX-512 VNNI or AVX2,
    /// inputs rounded to 8 or 7 bits).
    Int8,
}

/// A dense (fully connected) layer `y = x W^T + b`.
#[derive(Clone, Debug)]
pub enum Dense {
    /// Float weights: trainable variables (the only kind training builds).
    Float(Linear),
    /// Inference-only f32 weights stored transposed, `(in, out)` and contiguous, so the GEMM reads
    /// them in place instead of gathering the strided `W^T` view into a packed copy every call.
    Frozen {
        weight_t: Tensor,
        bias: Option<Tensor>,
    },
    /// Int8 weights with one scale per output row and the bias inside (see
    /// [`DenseCompute::Int8`]).
    Int8(Arc<Int8Matrix>),
    /// Block-quantized weights (`W` is `(out, in)`), multiplied without dequantizing; f32 bias.
    Quantized {
        weight: QMatMul,
        bias: Option<Tensor>,
    },
}

impl std::str::FromStr for DenseCompute {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Self::F32),
            "quantized" => Ok(Self::Quantized),
            "int8" => Ok(Self::Int8),
            other => Err(format!("unknown matmul `{other}` (f32, quantized or int8)")),
        }
    }
}

impl Dense {
    /// Builds an inference layer from a (possibly quantized) weight of shape `(out, in)` as
    /// `compute` asks. Float storage types (f32, f16, bf16) are never multiplied quantized, and the
    /// int8 kernel is CPU code (native and WASM): elsewhere both become f32.
    pub fn from_qtensor(
        weight: QTensor,
        bias: Option<Tensor>,
        compute: DenseCompute,
    ) -> Result<Self> {
        let float = is_float_storage(weight.dtype());
        if compute == DenseCompute::Quantized && !float {
            return Ok(Dense::Quantized {
                weight: QMatMul::from_arc(Arc::new(weight))?,
                bias,
            });
        }
        let device = weight.device();
        let w = weight.dequantize(&device)?.to_dtype(DType::F32)?;
        if compute == DenseCompute::Int8 && device.is_cpu() {
            let mut matrix = Int8Matrix::from_tensor(&w)?;
            if let Some(bias) = &bias {
                matrix = matrix.with_bias(bias)?;
            }
            return Ok(Dense::Int8(Arc::new(matrix)));
        }
        Ok(Dense::Frozen {
            weight_t: w.t()?.contiguous()?,
            bias,
        })
    }

    pub fn is_quantized(&self) -> bool {
        matches!(self, Dense::Quantized { .. } | Dense::Int8(_))
    }

    /// Applies the layer to `(batch, seq, in)` (through one 2-D matmul, which is faster on CPU than
    /// candle's batched broadcast matmul and has the same gradient) or `(rows, in)`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match xs.dims() {
            [b, t, d] => {
                let flat = xs.reshape((b * t, *d))?;
                let out = self.forward_2d(&flat)?;
                let out_dim = out.dim(1)?;
                out.reshape((*b, *t, out_dim))
            }
            _ => self.forward_2d(xs),
        }
    }

    /// Several layers over the same input, their outputs side by side (`(rows, sum of outs)`). Float
    /// layers run as one matmul with their weights stacked: one pass over the input instead of
    /// several, and backward one gradient for the input instead of several to sum.
    pub fn forward_stacked(layers: &[&Dense], xs: &Tensor) -> Result<Tensor> {
        let linears: Option<Vec<&Linear>> = layers
            .iter()
            .map(|layer| match layer {
                Dense::Float(linear) => Some(linear),
                _ => None,
            })
            .collect();
        let Some(linears) = linears else {
            let outs = layers
                .iter()
                .map(|layer| layer.forward(xs))
                .collect::<Result<Vec<_>>>()?;
            return Tensor::cat(&outs, D::Minus1);
        };
        let weight = Tensor::cat(&linears.iter().map(|l| l.weight()).collect::<Vec<_>>(), 0)?;
        let biases: Option<Vec<&Tensor>> = linears.iter().map(|l| l.bias()).collect();
        let bias = biases.map(|b| Tensor::cat(&b, 0)).transpose()?;
        Dense::Float(Linear::new(weight, bias)).forward(xs)
    }

    fn forward_2d(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            // Mixed precision casts the f32 master weights (differentiably) to the activations'
            // dtype, so gradients and optimizer state stay in f32.
            Dense::Float(linear) => match linear.bias() {
                Some(bias) if xs.dtype() == DType::F32 => {
                    crate::fused::linear(xs, linear.weight(), bias)
                }
                bias => add_bias(
                    xs.matmul(&linear.weight().to_dtype(xs.dtype())?.t()?)?,
                    bias,
                ),
            },
            Dense::Frozen { weight_t, bias } => add_bias(xs.matmul(weight_t)?, bias.as_ref()),
            Dense::Int8(weight) => weight.matmul(xs),
            Dense::Quantized { weight, bias } => {
                add_bias(weight.forward(&xs.contiguous()?)?, bias.as_ref())
            }
        }
    }
}

fn add_bias(out: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => crate::fused::add_bias(&out, &b.to_dtype(out.dtype())?),
        None => Ok(out),
    }
}

impl Module for Dense {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Dense::forward(self, xs)
    }
}

/// A lookup table (word embeddings): float, or kept block-quantized and dequantized row by row as
/// tokens are looked up, so a quantized model never holds the whole f32 table in memory.
#[derive(Clone, Debug)]
pub enum EmbeddingTable {
    Float(Embedding),
    Quantized(Arc<QTensor>),
}

impl EmbeddingTable {
    /// Like [`Dense::from_qtensor`]: float storage becomes an ordinary f32 `Embedding`.
    pub fn from_qtensor(table: QTensor) -> Result<Self> {
        if is_float_storage(table.dtype()) {
            let device = table.device();
            let (_, hidden) = table.shape().dims2()?;
            let t = table.dequantize(&device)?.to_dtype(DType::F32)?;
            return Ok(EmbeddingTable::Float(Embedding::new(t, hidden)));
        }
        Ok(EmbeddingTable::Quantized(Arc::new(table)))
    }

    /// `ids` of any shape -> `ids.shape + (hidden,)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            #[cfg(feature = "cuda")]
            EmbeddingTable::Float(e) if crate::fused::cuda_applies(&[e.embeddings()]) => {
                crate::cuda::gather_rows(e.embeddings(), ids)
            }
            EmbeddingTable::Float(e) => e.forward(ids),
            EmbeddingTable::Quantized(q) => q.embedding(ids),
        }
    }
}

pub(crate) fn is_float_storage(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
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
