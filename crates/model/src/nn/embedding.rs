//! Lookup tables (word embeddings): float, or kept block-quantized and dequantized row by row as
//! tokens are looked up, so a quantized model never holds the whole f32 table in memory.
use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Result, Tensor};
use candle_nn::Embedding;

use super::dense::is_float_storage;

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
            EmbeddingTable::Float(e) => crate::kernels::gather_rows(e.embeddings(), ids),
            EmbeddingTable::Quantized(q) => q.embedding(ids),
        }
    }
}
