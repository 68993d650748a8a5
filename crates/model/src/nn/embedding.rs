//! Lookup tables (word embeddings): float, or kept block-quantized and dequantized row by row as
//! tokens are looked up, so a quantized model never holds the whole f32 table in memory.
use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::quantized::QTensor;
use candle_core::{DType, Result, Tensor, TensorId, Var};
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

/// The rows of lookup tables that a training pass read, each read as a leaf variable of its own,
/// so that a table's gradient is just those rows ([`RowGradients::take`]). Through candle a lookup
/// on the table itself gets a gradient the size of the whole table: BERT's 30k x 384 word
/// embeddings are 47 MB zeroed, copied, and read twice more (the clipping norm, the optimizer) on
/// every step to carry the few hundred rows a batch of sentences uses.
#[derive(Default)]
pub struct RowGradients {
    reads: Mutex<Vec<RowRead>>,
}

/// One lookup: the table it read, the distinct rows in ascending order, and their copy.
struct RowRead {
    table: TensorId,
    rows: Vec<u32>,
    copy: Var,
}

/// A table's gradient as the rows that have one: `rows` ascending and distinct, `values` their
/// gradients one after another (`rows.len() * width`).
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRows {
    pub rows: Vec<u32>,
    pub values: Vec<f32>,
    pub width: usize,
}

impl RowGradients {
    /// `table[ids]` (shaped `ids.shape + (width,)`), the same values as
    /// [`EmbeddingTable::forward`], with the gradient going to a copy of the rows read.
    pub fn gather(&self, table: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let (_, width) = table.dims2()?;
        let ids_flat = ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let mut rows = ids_flat.clone();
        rows.sort_unstable();
        rows.dedup();
        let local: Vec<u32> = ids_flat
            .iter()
            .map(|id| rows.partition_point(|r| r < id) as u32)
            .collect();
        let device = table.device();
        let copy = Var::from_tensor(
            &table
                .detach()
                .index_select(&Tensor::new(rows.as_slice(), device)?, 0)?,
        )?;
        let mut dims = ids.dims().to_vec();
        dims.push(width);
        let out = copy
            .as_tensor()
            .index_select(&Tensor::new(local, device)?, 0)?
            .reshape(dims)?;
        self.reads.lock().expect("row reads lock").push(RowRead {
            table: table.id(),
            rows,
            copy,
        });
        Ok(out)
    }

    /// Forgets the reads so far (a pass whose gradients will not be used).
    pub fn clear(&self) {
        self.reads.lock().expect("row reads lock").clear();
    }

    /// The gradient that `grads` holds for `table` through the reads so far, summed per row over
    /// the reads (in the order they happened), or `None` where no read got a gradient. The reads
    /// of `table` are forgotten.
    pub fn take(&self, table: &Tensor, grads: &GradStore) -> Result<Option<SparseRows>> {
        let (_, width) = table.dims2()?;
        let mut reads = self.reads.lock().expect("row reads lock");
        let (mine, others): (Vec<RowRead>, Vec<RowRead>) =
            reads.drain(..).partition(|r| r.table == table.id());
        *reads = others;
        let mut parts = Vec::new();
        for read in mine {
            if let Some(g) = grads.get(read.copy.as_tensor()) {
                let values = g.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                parts.push((read.rows, values));
            }
        }
        Ok(match parts.len() {
            0 => None,
            1 => {
                let (rows, values) = parts.pop().expect("one part");
                Some(SparseRows {
                    rows,
                    values,
                    width,
                })
            }
            _ => Some(SparseRows::sum(&parts, width)),
        })
    }
}

impl SparseRows {
    /// The per-row sum of several row gradients, added in the order given.
    fn sum(parts: &[(Vec<u32>, Vec<f32>)], width: usize) -> Self {
        let mut rows: Vec<u32> = parts.iter().flat_map(|(r, _)| r.iter().copied()).collect();
        rows.sort_unstable();
        rows.dedup();
        let mut values = vec![0f32; rows.len() * width];
        for (part_rows, part_values) in parts {
            for (row, chunk) in part_rows.iter().zip(part_values.chunks_exact(width)) {
                let at = rows.partition_point(|r| r < row) * width;
                for (v, g) in values[at..at + width].iter_mut().zip(chunk) {
                    *v += g;
                }
            }
        }
        Self {
            rows,
            values,
            width,
        }
    }

    /// The dense gradient, shaped `(table_rows, width)`.
    pub fn to_dense(&self, table_rows: usize, device: &candle_core::Device) -> Result<Tensor> {
        let mut dense = vec![0f32; table_rows * self.width];
        for (row, chunk) in self.rows.iter().zip(self.values.chunks_exact(self.width)) {
            let at = *row as usize * self.width;
            dense[at..at + self.width].copy_from_slice(chunk);
        }
        Tensor::from_vec(dense, (table_rows, self.width), device)
    }
}
