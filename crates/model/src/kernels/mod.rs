//! Kernels: ops on tensors, below every layer and model. Each public op chooses once, at its entry
//! point ([`dispatch`]), between our CPU kernel, our CUDA kernel and candle's composed ops, so a
//! caller never asks which runs.
//!
//! | module | what |
//! |---|---|
//! | [`dispatch`] | where an op runs (CPU kernel, CUDA kernel, composed) and CPU storage access |
//! | [`dropout`] | seeded dropout streams, identical on every platform |
//! | [`fused`] | layer norm, dropout + residual + layer norm, softmax, dense, bias, row gather |
//! | [`activations`] | the exact (erf) GELU, vectorized |
//! | `math` | elementary functions (exp, softmax) that vectorize |
//! | [`attention`] | attention per sequence on the CPU, for inference and training |
//! | [`int8`] | weight-only int8 matmul (x86 VNNI / AVX2, portable for WASM) |
//! | `cuda` | CUDA training kernels (feature `cuda`, off unless switched on) |
//!
//! A new kernel goes here, in its own module, with its choice in its entry point.
pub mod activations;
pub mod attention;
#[cfg(feature = "cuda")]
pub mod cuda;
pub(crate) mod dispatch;
pub mod dropout;
pub mod fused;
pub mod int8;
pub(crate) mod math;
mod strided;

pub use activations::gelu_erf;
pub use attention::{packed_attention, trainable_attention, Segment};
pub use dropout::{DropoutDraw, DropoutRng};
pub use fused::{
    add_bias, dropout_on_device, gather_rows, layer_norm, linear, residual_layer_norm,
    softmax_last_dim,
};
pub use int8::Int8Matrix;
