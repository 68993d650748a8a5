//! multitag-gpu: the BERT encoder's inference on a GPU through wgpu, natively (Vulkan, Metal,
//! DX12) and in browsers (WebGPU). candle has no WebGPU backend, so this crate is the encoder's
//! forward pass written once more, as WGSL compute shaders, for inference only; the heads and the
//! decoding of every method stay the CPU code they are ([`multitag_model::tasks`]), fed with the
//! hidden states computed here.
//!
//! | module | what |
//! |---|---|
//! | [`codes`] | quantized matrices in the one layout the shaders dequantize as they read |
//! | [`context`] | the adapter, device and queue ([`Gpu`]), and what the shaders need of them |
//! | [`kernels`] | the compute pipelines: dense layer (tiled matmul + bias + activation), attention, residual + layer norm, embeddings |
//! | [`encoder`] | [`GpuEncoder`]: the weights uploaded once, the forward pass of a batch |
//! | [`staged`] | [`StagedStates`]: the GPU encoder behind a synchronous predictor where nothing may block (a browser) |
//!
//! What the forward pass computes is [`multitag_model::BertEncoder`]'s inference: the same
//! embeddings (word + position + token type 0, layer norm), layers (attention over the real
//! tokens of each sequence, output projection, residual and layer norm, GELU feed-forward,
//! residual and layer norm), in f32. As on the CPU, pads are dropped before the first layer
//! (every row is a real token; attention knows each row's sequence), so a batch of short titles
//! costs what its tokens cost. Weights are read by their Hugging Face names from float tensors or
//! an exported GGUF file's quantized ones, whose matrices stay quantized on the GPU ([`codes`]).
pub mod codes;
pub mod context;
pub mod encoder;
pub mod error;
pub mod kernels;
pub mod staged;

pub use context::Gpu;
pub use encoder::{EncoderStates, GpuEncoder, Stored};
pub use error::GpuError;
pub use staged::{run_staged, EncoderRequest, StagedError, StagedStates, StatesSource};
