//! Layers: what models are built from, each over the kernels below it. A layer gets its
//! parameters from [`Weights`] (trainable variables or an exported GGUF file, the same code for
//! both) and runs as its [`Mode`] says (inference or seeded training).
//!
//! | module | what |
//! |---|---|
//! | [`mode`] | inference or training: how dropout, layer norm and softmax run |
//! | [`dense`] | dense layers: float, frozen f32, int8, block-quantized |
//! | [`norm`] | layer norm |
//! | [`embedding`] | lookup tables, float or quantized |
//! | [`weights`] | where parameters come from, and checkpoint name mapping |
//! | [`losses`] | cross-entropy, triplet, InfoNCE, row normalization |
pub mod dense;
pub mod embedding;
pub mod losses;
pub mod mode;
pub mod norm;
pub mod weights;

pub use dense::{Dense, DenseCompute};
pub use embedding::{EmbeddingTable, RowGradients, SparseRows};
pub use losses::{info_nce_loss, normalize_rows, token_cross_entropy, triplet_loss, TripletForm};
pub use mode::Mode;
pub use norm::LayerNorm;
pub use weights::Weights;
