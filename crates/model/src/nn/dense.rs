//! Dense (fully connected) layers: a float `candle_nn::Linear` (the only kind training ever
//! builds), frozen f32 weights, int8 rows or a quantized `QMatMul` plus an f32 bias (the last
//! three loaded from an exported GGUF model), behind one `forward`, so the encoder has a single
//! code path.
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::Linear;

use crate::kernels::{self, Int8Matrix};

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
    /// ([`crate::kernels::int8`]): at most half the memory of f32, and faster where the float GEMM has no
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
    /// A dense layer initialised as BERT initialises its own (and so SpERT and BINDER their
    /// heads): weights N(0, 0.02), biases 0. A loaded model reads them whatever their source.
    pub fn initialised(weights: &super::Weights, in_dim: usize, out_dim: usize) -> Result<Dense> {
        match weights {
            super::Weights::Float(vb) => {
                let init = candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                };
                let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
                let bias = vb.get_with_hints(out_dim, "bias", candle_nn::Init::Const(0.0))?;
                Ok(Dense::Float(Linear::new(weight, Some(bias))))
            }
            _ => weights.dense(in_dim, out_dim),
        }
    }

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
        let w = weight.dequantize(&weight.device())?.to_dtype(DType::F32)?;
        Self::from_f32(w, bias, compute)
    }

    /// An inference layer from f32 weights `(out, in)`: int8 rows where `compute` says so and the
    /// device is the CPU, else [`Dense::Frozen`].
    pub fn from_f32(w: Tensor, bias: Option<Tensor>, compute: DenseCompute) -> Result<Self> {
        if compute == DenseCompute::Int8 && w.device().is_cpu() {
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
        on_rows(xs, |rows| self.forward_2d(rows))
    }

    /// GELU (erf form) of the layer's output; int8 layers apply it as they store the product.
    pub fn forward_gelu_erf(&self, xs: &Tensor) -> Result<Tensor> {
        let Dense::Int8(weight) = self else {
            return kernels::gelu_erf(&self.forward(xs)?);
        };
        on_rows(xs, |rows| {
            weight.matmul_then(rows, kernels::int8::Activation::GeluErf)
        })
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
                    kernels::linear(xs, linear.weight(), bias)
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
        Some(b) => kernels::add_bias(&out, &b.to_dtype(out.dtype())?),
        None => Ok(out),
    }
}

impl Module for Dense {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Dense::forward(self, xs)
    }
}

/// `f` over the rows of `(batch, seq, in)` (as one 2-D product) or of `(rows, in)`, the result in
/// the input's leading shape.
fn on_rows(xs: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    match xs.dims() {
        [b, t, d] => {
            let out = f(&xs.reshape((b * t, *d))?)?;
            let out_dim = out.dim(1)?;
            out.reshape((*b, *t, out_dim))
        }
        _ => f(xs),
    }
}

pub(super) fn is_float_storage(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}
