//! The BERT encoder (Devlin et al. 2019), written once for every head, for training and inference,
//! natively and in the browser. Parameter names follow Hugging Face's `BertModel`, so any HF BERT
//! checkpoint loads and our saved models load back into `transformers`. Weights come from a
//! [`Weights`] source: trainable variables (float) or an exported GGUF model (quantized), through
//! the same code.
use candle_core::{DType, Result, Tensor, D};
use candle_nn::Embedding;

use crate::config::BertConfig;
use crate::kernels::{self, dispatch, Segment};
use crate::nn::{Dense, EmbeddingTable, LayerNorm, Mode, Weights};

struct Embeddings {
    word: EmbeddingTable,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
    dropout: f32,
}

impl Embeddings {
    fn load(cfg: &BertConfig, vb: Weights) -> Result<Self> {
        Ok(Self {
            word: vb
                .pp("word_embeddings")
                .embedding(cfg.vocab_size, cfg.hidden_size)?,
            position: vb
                .pp("position_embeddings")
                .float_embedding(cfg.max_position_embeddings, cfg.hidden_size)?,
            token_type: vb
                .pp("token_type_embeddings")
                .float_embedding(cfg.type_vocab_size, cfg.hidden_size)?,
            norm: LayerNorm::load(cfg.hidden_size, cfg.layer_norm_eps, vb.pp("LayerNorm"))?,
            dropout: cfg.hidden_dropout_prob,
        })
    }

    /// Single-segment inputs only: every token has type 0, so its embedding is one broadcast row.
    fn forward(&self, input_ids: &Tensor, mode: &Mode) -> Result<Tensor> {
        let (_, seq_len) = input_ids.dims2()?;
        let words = match (mode.row_gradients(), &self.word) {
            (Some(rows), EmbeddingTable::Float(table)) => {
                rows.gather(table.embeddings(), input_ids)?
            }
            _ => self.word.forward(input_ids)?,
        };
        let positions = self.position.embeddings().narrow(0, 0, seq_len)?;
        let segment = self.token_type.embeddings().narrow(0, 0, 1)?;
        let xs = words.broadcast_add(&positions.broadcast_add(&segment)?)?;
        let xs = mode.layer_norm(&self.norm, &xs)?;
        mode.dropout(&xs, self.dropout)
    }
}

/// The query, key and value projections, whose outputs attention reads side by side.
enum Projections {
    /// Each its own layer (trainable weights, and block-quantized ones multiplied as stored),
    /// stacked per call by [`Dense::forward_stacked`].
    Apart([Dense; 3]),
    /// One inference layer with the three weights stacked at load: one matmul, and for int8 one
    /// rounding of the input instead of three.
    Stacked(Dense),
}

impl Projections {
    /// `(rows, 3 * hidden)`: query, key and value side by side.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Projections::Apart([q, k, v]) => Dense::forward_stacked(&[q, k, v], xs),
            Projections::Stacked(qkv) => qkv.forward(xs),
        }
    }
}

struct SelfAttention {
    projections: Projections,
    output: Dense,
    norm: LayerNorm,
    heads: usize,
    head_dim: usize,
    attention_dropout: f32,
    hidden_dropout: f32,
}

impl SelfAttention {
    fn load(cfg: &BertConfig, vb: Weights) -> Result<Self> {
        let h = cfg.hidden_size;
        let own = vb.pp("self");
        let out = vb.pp("output");
        let parts = ["query", "key", "value"];
        let projections = match own.dense_stacked(&parts, h, h)? {
            Some(stacked) => Projections::Stacked(stacked),
            None => Projections::Apart([
                own.pp(parts[0]).dense(h, h)?,
                own.pp(parts[1]).dense(h, h)?,
                own.pp(parts[2]).dense(h, h)?,
            ]),
        };
        Ok(Self {
            projections,
            output: out.pp("dense").dense(h, h)?,
            norm: LayerNorm::load(h, cfg.layer_norm_eps, out.pp("LayerNorm"))?,
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            attention_dropout: cfg.attention_probs_dropout_prob,
            hidden_dropout: cfg.hidden_dropout_prob,
        })
    }

    /// `xs` holds one row per token as `layout` places them; so does the result.
    fn forward(
        &self,
        xs: &Tensor,
        layout: &TokenLayout,
        additive_mask: &Tensor,
        mode: &Mode,
    ) -> Result<Tensor> {
        let context = self.context(xs, layout, additive_mask, mode)?;
        let out = self.output.forward(&context)?;
        mode.residual_layer_norm(&self.norm, &out, xs, self.hidden_dropout)
    }

    /// The attention context rows: per sequence on the CPU, over the masked grid elsewhere.
    fn context(
        &self,
        xs: &Tensor,
        layout: &TokenLayout,
        additive_mask: &Tensor,
        mode: &Mode,
    ) -> Result<Tensor> {
        Ok(match (layout.segments(), mode) {
            // On the CPU, attention per sequence over the rows as they are.
            (Some(segments), _) if mode.is_train() && dispatch::cpu_applies(&[xs]) => {
                let qkv = self.projections.forward(xs)?;
                let dropout = mode.dropout_draw(self.attention_dropout);
                kernels::trainable_attention(&qkv, segments, self.heads, dropout)?
            }
            (Some(segments), Mode::Infer) if dispatch::cpu_applies(&[xs]) => {
                kernels::packed_attention(&self.projections.forward(xs)?, segments, self.heads)?
            }
            _ => self.grid_context(xs, layout, additive_mask, mode)?,
        })
    }

    /// Attention over the `(batch, heads, seq)` grid with the padding mask: devices other than the
    /// CPU, half precision, and masks that are not right padding. Returns the context rows in
    /// `layout`.
    fn grid_context(
        &self,
        xs: &Tensor,
        layout: &TokenLayout,
        additive_mask: &Tensor,
        mode: &Mode,
    ) -> Result<Tensor> {
        // (batch, seq, 3 * hidden) -> (3, batch, heads, seq, head_dim): one copy for all three.
        let grid = layout.to_grid(&self.projections.forward(xs)?)?;
        let (b, t, _) = grid.dims3()?;
        let parts = grid
            .reshape((b, t, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let (q, k, v) = (parts.get(0)?, parts.get(1)?, parts.get(2)?);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = q.matmul(&k.t()?.contiguous()?)?;
        let probs = self.attention_probs(&scores, additive_mask, scale, mode)?;
        let (b, _, t, _) = probs.dims4()?;
        let context =
            probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, t, self.heads * self.head_dim))?;
        layout.to_rows(&context)
    }

    /// `dropout(softmax(scores * scale + mask))`: one CUDA kernel each way in training where
    /// `kernels::cuda` is on, composed elsewhere.
    fn attention_probs(
        &self,
        scores: &Tensor,
        additive_mask: &Tensor,
        scale: f64,
        mode: &Mode,
    ) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if mode.is_train() && dispatch::cuda_applies(&[scores, additive_mask]) {
            let dropout = mode.dropout_draw(self.attention_dropout);
            return kernels::cuda::attention_probs(scores, additive_mask, scale as f32, dropout);
        }
        let scores = (scores * scale)?.broadcast_add(additive_mask)?;
        let probs = mode.softmax_last_dim(&scores)?;
        mode.dropout(&probs, self.attention_dropout)
    }
}

struct FeedForward {
    intermediate: Dense,
    output: Dense,
    norm: LayerNorm,
    act: String,
    dropout: f32,
}

impl FeedForward {
    fn load(cfg: &BertConfig, vb: Weights) -> Result<Self> {
        Ok(Self {
            intermediate: vb
                .pp("intermediate.dense")
                .dense(cfg.hidden_size, cfg.intermediate_size)?,
            output: vb
                .pp("output.dense")
                .dense(cfg.intermediate_size, cfg.hidden_size)?,
            norm: LayerNorm::load(
                cfg.hidden_size,
                cfg.layer_norm_eps,
                vb.pp("output.LayerNorm"),
            )?,
            act: cfg.hidden_act.clone(),
            dropout: cfg.hidden_dropout_prob,
        })
    }

    fn forward(&self, xs: &Tensor, mode: &Mode) -> Result<Tensor> {
        let inner = match self.act.as_str() {
            "relu" => self.intermediate.forward(xs)?.relu()?,
            "gelu_new" | "gelu_pytorch_tanh" => self.intermediate.forward(xs)?.gelu()?,
            _ => self.intermediate.forward_gelu_erf(xs)?,
        };
        let out = self.output.forward(&inner)?;
        mode.residual_layer_norm(&self.norm, &out, xs, self.dropout)
    }
}

struct Layer {
    attention: SelfAttention,
    feed_forward: FeedForward,
}

/// Another implementation of [`BertEncoder`]'s inference, on other hardware (the wgpu encoder of
/// `multitag-gpu`): given the same `(batch, seq)` ids and mask, it returns what
/// [`BertEncoder`]'s forward pass does, so every head and decoder above it is unchanged.
pub trait EncoderBackend: Send + Sync {
    /// The hidden states `(batch, seq, hidden)` (f32, on the CPU) after the first `layers` layers,
    /// and after `depth` layers too when asked (`depth < layers`).
    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        layers: usize,
        depth: Option<usize>,
    ) -> Result<(Tensor, Option<Tensor>)>;

    /// What runs it, for people (an adapter's name).
    fn name(&self) -> String;
}

/// A BERT encoder: embeddings and a stack of transformer layers, returning the last hidden states.
pub struct BertEncoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pub config: BertConfig,
    /// The dtype the transformer layers compute in: f32, or bf16/f16 for mixed precision (weights
    /// stay f32 and are cast per matmul; layer norm and softmax statistics stay f32). The
    /// returned hidden states are always f32.
    pub compute_dtype: DType,
    /// Run everything but attention on real tokens only (see [`TokenLayout`]); on by default.
    /// Off, every pad is computed, as a padded PyTorch `BertModel` does (same-arithmetic
    /// benchmarks).
    pub drop_padding: bool,
    /// In training, the embeddings and this many bottom layers stay as loaded: the gradient stops
    /// above them (their output is detached), so they cost a forward pass and no backward, and
    /// the optimizer leaves them alone. `None` trains everything.
    pub frozen_layers: Option<usize>,
    /// Where inference runs when not here (training always runs here).
    backend: Option<std::sync::Arc<dyn EncoderBackend>>,
}

impl BertEncoder {
    /// `weights` points at the encoder's root (the `bert.` prefix of a task model, or the file
    /// root): a `VarBuilder` (float, trainable) or a GGUF model (possibly quantized).
    pub fn load<'a>(cfg: &BertConfig, weights: impl Into<Weights<'a>>) -> Result<Self> {
        let vb = weights.into();
        let embeddings = Embeddings::load(cfg, vb.pp("embeddings"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let lv = vb.pp(format!("encoder.layer.{i}"));
                Ok(Layer {
                    attention: SelfAttention::load(cfg, lv.pp("attention"))?,
                    feed_forward: FeedForward::load(cfg, lv.clone())?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings,
            layers,
            config: cfg.clone(),
            compute_dtype: DType::F32,
            drop_padding: true,
            frozen_layers: None,
            backend: None,
        })
    }

    /// Runs inference on `backend` from now on (`None`: here again). The backend must hold this
    /// encoder's weights.
    pub fn set_backend(&mut self, backend: Option<std::sync::Arc<dyn EncoderBackend>>) {
        self.backend = backend;
    }

    /// The backend inference runs on, if not here.
    pub fn backend(&self) -> Option<&dyn EncoderBackend> {
        self.backend.as_deref()
    }

    /// `input_ids` and `attention_mask` are `(batch, seq)` u32 tensors (mask 1 = real token).
    /// Returns `(batch, seq, hidden)` in f32.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        mode: &Mode,
    ) -> Result<Tensor> {
        Ok(self
            .run(input_ids, attention_mask, mode, self.layers.len())?
            .0)
    }

    /// The top layer's hidden states and those after the embedding depth
    /// ([`BertConfig::embedding_depth`]; the same tensor when that is every layer), in one pass.
    pub fn forward_with_embedding_states(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        mode: &Mode,
    ) -> Result<(Tensor, Tensor)> {
        let (top, at_depth) = self.run(input_ids, attention_mask, mode, self.layers.len())?;
        Ok((top.clone(), at_depth.unwrap_or(top)))
    }

    /// Mean-pooled sentence embeddings `(batch, hidden)` ([`mean_pool`] over the real tokens)
    /// after the embedding depth: the one pooling that the description loss trains and every
    /// embedder computes, so an embedding at inference is the one training shaped. Layers above
    /// that depth (a tagger's own) are not computed.
    pub fn embed(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        mode: &Mode,
    ) -> Result<Tensor> {
        let depth = self.config.embedding_depth();
        mean_pool(
            &self.run(input_ids, attention_mask, mode, depth)?.0,
            attention_mask,
        )
    }

    /// The first `layers` layers: their output, and the output after the embedding depth when
    /// that is below `layers`.
    fn run(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        mode: &Mode,
        layers: usize,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let depth = self.config.embedding_depth();
        if let (Some(backend), false) = (&self.backend, mode.is_train()) {
            let depth = Some(depth).filter(|&d| d < layers);
            return backend.forward(input_ids, attention_mask, layers, depth);
        }
        let grid = self
            .embeddings
            .forward(input_ids, mode)?
            .to_dtype(self.compute_dtype)?;
        let layout = TokenLayout::new(attention_mask, self.drop_padding)?;
        let additive_mask = additive_attention_mask(attention_mask, grid.dtype())?;
        let mut xs = layout.to_rows(&grid)?;
        let frozen = self.frozen_layers.filter(|_| mode.is_train());
        if frozen == Some(0) {
            xs = xs.detach();
        }
        let mut at_depth = None;
        for (i, layer) in self.layers[..layers].iter().enumerate() {
            xs = layer
                .attention
                .forward(&xs, &layout, &additive_mask, mode)?;
            xs = layer.feed_forward.forward(&xs, mode)?;
            if frozen == Some(i + 1) {
                xs = xs.detach();
            }
            if i + 1 == depth && depth < layers {
                at_depth = Some(layout.to_grid(&xs)?.to_dtype(DType::F32)?);
            }
        }
        Ok((layout.to_grid(&xs)?.to_dtype(DType::F32)?, at_depth))
    }
}

/// Where the encoder keeps one row per token between attention blocks. Everything but attention
/// (the dense layers: nearly all the arithmetic, and their gradients) works row by row, so the
/// padding can be dropped and those layers see only real tokens; attention alone needs to know
/// which rows form a sequence. Titles batched 32 at a time in catalog order carry about 0.7 pad
/// tokens per real one. Pads never reach a loss (masked out of pooling and token losses), so
/// dropping them changes no result, only the float rounding of the real tokens.
enum TokenLayout {
    /// Every grid cell is a row, pads included: `(batch * seq, hidden)`. `segments` where each
    /// sequence is right-padded and has a real token (else attention takes the masked grid).
    Padded {
        batch: usize,
        seq: usize,
        segments: Option<Vec<Segment>>,
    },
    /// Real tokens only: `(tokens, hidden)`.
    Packed {
        batch: usize,
        seq: usize,
        /// Each non-empty sequence's rows, all real.
        segments: Vec<Segment>,
        /// `(tokens,)`: the grid cell (`b * seq + t`) of each real token.
        cell_of_row: Tensor,
        /// `(batch * seq,)`: the row of each grid cell; pads point at row 0, a stand-in that the
        /// attention mask hides and that no caller reads.
        row_of_cell: Tensor,
    },
}

impl TokenLayout {
    fn new(attention_mask: &Tensor, drop_padding: bool) -> Result<Self> {
        let (batch, seq) = attention_mask.dims2()?;
        // Segments serve the CPU kernels only; elsewhere reading the mask back would cost a copy
        // from the device every forward pass.
        if !drop_padding && !attention_mask.device().is_cpu() {
            return Ok(TokenLayout::Padded {
                batch,
                seq,
                segments: None,
            });
        }
        let keep = attention_mask
            .to_dtype(DType::U32)?
            .flatten_all()?
            .to_vec1::<u32>()?;
        let real: Vec<usize> = keep
            .chunks_exact(seq.max(1))
            .map(|lane| lane.iter().filter(|&&k| k != 0).count())
            .collect();
        let tokens: usize = real.iter().sum();
        if !drop_padding || tokens == keep.len() || tokens == 0 {
            let right_padded = seq > 0
                && keep
                    .chunks_exact(seq)
                    .zip(&real)
                    .all(|(lane, &n)| n > 0 && lane[..n].iter().all(|&k| k != 0));
            let segments = right_padded.then(|| {
                (0..batch)
                    .map(|b| Segment {
                        first: b * seq,
                        len: seq,
                        keys: real[b],
                    })
                    .collect()
            });
            return Ok(TokenLayout::Padded {
                batch,
                seq,
                segments,
            });
        }
        let cell_of_row: Vec<u32> = (0..keep.len() as u32)
            .filter(|&cell| keep[cell as usize] != 0)
            .collect();
        let mut segments = Vec::with_capacity(batch);
        let mut first = 0;
        for &len in real.iter().filter(|&&len| len > 0) {
            segments.push(Segment {
                first,
                len,
                keys: len,
            });
            first += len;
        }
        let mut row_of_cell = vec![0u32; keep.len()];
        for (row, &cell) in cell_of_row.iter().enumerate() {
            row_of_cell[cell as usize] = row as u32;
        }
        let device = attention_mask.device();
        Ok(TokenLayout::Packed {
            batch,
            seq,
            segments,
            cell_of_row: Tensor::new(cell_of_row, device)?,
            row_of_cell: Tensor::new(row_of_cell, device)?,
        })
    }

    /// Each sequence's rows, where attention can take them one sequence at a time.
    fn segments(&self) -> Option<&[Segment]> {
        match self {
            TokenLayout::Padded { segments, .. } => segments.as_deref(),
            TokenLayout::Packed { segments, .. } => Some(segments),
        }
    }

    /// `(batch, seq, hidden)` -> rows.
    fn to_rows(&self, grid: &Tensor) -> Result<Tensor> {
        let hidden = grid.dim(D::Minus1)?;
        match self {
            TokenLayout::Padded { batch, seq, .. } => grid.reshape((batch * seq, hidden)),
            TokenLayout::Packed {
                batch,
                seq,
                cell_of_row,
                ..
            } => select_rows(&grid.reshape((batch * seq, hidden))?, cell_of_row),
        }
    }

    /// Rows -> `(batch, seq, hidden)`.
    fn to_grid(&self, rows: &Tensor) -> Result<Tensor> {
        let hidden = rows.dim(D::Minus1)?;
        match self {
            TokenLayout::Padded { batch, seq, .. } => rows.reshape((*batch, *seq, hidden)),
            TokenLayout::Packed {
                batch,
                seq,
                row_of_cell,
                ..
            } => select_rows(rows, row_of_cell)?.reshape((*batch, *seq, hidden)),
        }
    }
}

/// `table.index_select(ids, 0)` ([`kernels::gather_rows`]: on CUDA a kernel, since candle's CUDA
/// backward pass for it is one block of threads, run twice a layer when padding is dropped).
fn select_rows(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    kernels::gather_rows(table, ids)
}

/// `(batch, 1, 1, seq)`: 0 where attended, a large negative where padded. The negative is chosen to
/// be representable in f16/bf16 too, so half-precision attention never turns padding into NaN.
pub fn additive_attention_mask(attention_mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, t) = attention_mask.dims2()?;
    let keep = attention_mask.to_dtype(DType::F32)?;
    let mask = ((keep - 1.0)? * 30_000.0)?;
    mask.reshape((b, 1, 1, t))?.to_dtype(dtype)
}

/// Mean of the hidden states over real tokens (the pooling all-MiniLM-L6-v2 was trained with).
pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
    let mask = attention_mask
        .to_dtype(hidden.dtype())?
        .unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-6, f64::MAX)?;
    summed.broadcast_div(&counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::DropoutRng;
    use crate::nn::RowGradients;
    use candle_core::Device;
    use candle_nn::{VarBuilder, VarMap};

    /// A tiny encoder without dropout, so training mode computes what inference does, through the
    /// general attention path (grid, heads, mask).
    fn tiny_encoder() -> (VarMap, BertEncoder) {
        let config = BertConfig::from_json(
            "tiny",
            r#"{"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2,
                "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu",
                "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
                "max_position_embeddings": 16, "type_vocab_size": 2}"#,
        )
        .unwrap();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let encoder = BertEncoder::load(&config, vb).unwrap();
        (varmap, encoder)
    }

    fn batch(lengths: &[usize], seq: usize) -> (Tensor, Tensor) {
        let ids: Vec<u32> = (0..lengths.len() * seq)
            .map(|i| (i * 7 % 49) as u32 + 1)
            .collect();
        let mask: Vec<u32> = lengths
            .iter()
            .flat_map(|&len| (0..seq).map(move |t| (t < len) as u32))
            .collect();
        let shape = (lengths.len(), seq);
        (
            Tensor::from_vec(ids, shape, &Device::Cpu).unwrap(),
            Tensor::from_vec(mask, shape, &Device::Cpu).unwrap(),
        )
    }

    /// With an embedding depth below the top, embeddings pool the states after that layer (what a
    /// model of that many layers computes) and the top states are still every layer's.
    #[test]
    fn embeddings_pool_at_the_embedding_depth() -> Result<()> {
        let (varmap, full) = tiny_encoder();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let shallow_config = BertConfig {
            num_hidden_layers: 1,
            ..full.config.clone()
        };
        let shallow = BertEncoder::load(&shallow_config, vb.clone())?;
        let deep_config = BertConfig {
            embedding_layers: Some(1),
            ..full.config.clone()
        };
        let deep = BertEncoder::load(&deep_config, vb)?;
        let (ids, mask) = batch(&[5, 3], 5);
        let diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
        };
        let one_layer = shallow.embed(&ids, &mask, &Mode::Infer)?;
        assert!(diff(&deep.embed(&ids, &mask, &Mode::Infer)?, &one_layer)? < 1e-6);
        let (top, at_depth) = deep.forward_with_embedding_states(&ids, &mask, &Mode::Infer)?;
        assert!(diff(&mean_pool(&at_depth, &mask)?, &one_layer)? < 1e-6);
        assert!(diff(&top, &full.forward(&ids, &mask, &Mode::Infer)?)? < 1e-6);
        assert!(diff(&full.embed(&ids, &mask, &Mode::Infer)?, &one_layer)? > 1e-3);
        Ok(())
    }

    /// Reading the word embeddings by rows changes nothing in the pass: the same output, the same
    /// gradients elsewhere, and the rows' gradients are the dense gradient's non-zero rows.
    #[test]
    fn row_reads_give_the_dense_gradient_as_rows() -> Result<()> {
        let (varmap, encoder) = tiny_encoder();
        let (ids, mask) = batch(&[5, 3], 5);
        let rows = RowGradients::default();
        let (dense_rng, rows_rng) = (DropoutRng::new(1), DropoutRng::new(1));
        let dense_out = encoder.forward(&ids, &mask, &Mode::Train(&dense_rng))?;
        let rows_out = encoder.forward(&ids, &mask, &Mode::TrainRows(&rows_rng, &rows))?;
        assert_eq!(crate::testing::max_diff(&dense_out, &rows_out), 0.0);
        let dense = dense_out.sqr()?.sum_all()?.backward()?;
        let by_rows = rows_out.sqr()?.sum_all()?.backward()?;
        let vars = varmap.data().lock().unwrap();
        let table = &vars["embeddings.word_embeddings.weight"];
        assert!(by_rows.get(table).is_none());
        let sparse = rows.take(table, &by_rows)?.expect("rows were read");
        let (vocab, _) = table.dims2()?;
        let reference = dense.get(table).unwrap();
        assert_eq!(
            crate::testing::max_diff(&sparse.to_dense(vocab, &Device::Cpu)?, reference),
            0.0
        );
        let mut read: Vec<u32> = ids.flatten_all()?.to_vec1()?;
        read.sort_unstable();
        read.dedup();
        assert_eq!(sparse.rows, read);
        for (name, var) in vars
            .iter()
            .filter(|(name, _)| !name.contains("word_embeddings"))
        {
            let diff = crate::testing::max_diff(by_rows.get(var).unwrap(), dense.get(var).unwrap());
            assert_eq!(diff, 0.0, "{name}");
        }
        // Taken once: the reads are forgotten.
        assert!(rows.take(table, &by_rows)?.is_none());
        Ok(())
    }

    /// Frozen layers get no gradient and the layers above them the same one as without freezing
    /// (the forward is unchanged); inference ignores the setting.
    #[test]
    fn frozen_layers_get_no_gradient_and_change_nothing_above() -> Result<()> {
        let (varmap, mut encoder) = tiny_encoder();
        let (ids, mask) = batch(&[5, 3], 5);
        let rng = DropoutRng::new(1);
        let grads = |encoder: &BertEncoder| -> Result<_> {
            let out = encoder.forward(&ids, &mask, &Mode::Train(&rng))?;
            (out.sqr()?.sum_all()?).backward()
        };
        let all = grads(&encoder)?;
        let vars = varmap.data().lock().unwrap();
        let inference = encoder.forward(&ids, &mask, &Mode::Infer)?;
        for frozen in 0..=2 {
            encoder.frozen_layers = Some(frozen);
            let some = grads(&encoder)?;
            for (name, var) in vars.iter() {
                let layer = name
                    .strip_prefix("encoder.layer.")
                    .and_then(|rest| rest.split('.').next())
                    .map(|i| i.parse::<usize>().unwrap());
                let trains = layer.is_some_and(|l| l >= frozen);
                match (some.get(var), trains) {
                    (None, false) => {}
                    (Some(g), true) => {
                        let reference = all.get(var).unwrap();
                        let diff = (g - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
                        assert!(diff < 1e-6, "{name}: {diff}");
                    }
                    (g, _) => panic!("{name} with {frozen} frozen: gradient {}", g.is_some()),
                }
            }
            let same = encoder.forward(&ids, &mask, &Mode::Infer)?;
            let diff = (same - &inference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(diff, 0.0);
        }
        Ok(())
    }

    /// Per-sequence attention (inference and training) against the masked grid, on packed rows
    /// and on padded ones, forward and (training) gradients of every weight.
    #[test]
    fn per_sequence_attention_matches_the_masked_grid() -> Result<()> {
        let (varmap, encoder) = tiny_encoder();
        let attention = &encoder.layers[0].attention;
        let rng = DropoutRng::new(1);
        let cases = [
            (&[7usize, 3, 5, 1][..], true),
            (&[7, 3, 5, 1][..], false),
            (&[6, 6][..], true),
            // Past one vector of keys (inference scores keys 16 at a time).
            (&[20, 17, 16, 2][..], true),
        ];
        for (lengths, drop_padding) in cases {
            let (_, mask) = batch(lengths, lengths[0]);
            let layout = TokenLayout::new(&mask, drop_padding)?;
            assert!(layout.segments().is_some());
            let additive = additive_attention_mask(&mask, DType::F32)?;
            let rows = match &layout {
                TokenLayout::Packed { cell_of_row, .. } => cell_of_row.dim(0)?,
                TokenLayout::Padded { batch, seq, .. } => batch * seq,
            };
            let xs = Tensor::randn(0f32, 1.0, (rows, 32), &Device::Cpu)?;
            // Rows the grid path computes for pads are compared only where real.
            let real = layout
                .to_rows(&mask.to_dtype(DType::F32)?.unsqueeze(2)?)?
                .broadcast_as((rows, 32))?
                .contiguous()?;
            let weights = (Tensor::randn(0f32, 1.0, (rows, 32), &Device::Cpu)? * &real)?;
            for mode in [Mode::Infer, Mode::Train(&rng)] {
                let ours = attention.context(&xs, &layout, &additive, &mode)?;
                let grid = attention.grid_context(&xs, &layout, &additive, &mode)?;
                let diff = ((&ours - &grid)? * &real)?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                assert!(diff < 1e-5, "{lengths:?} {drop_padding}: {diff}");
                if !mode.is_train() {
                    continue;
                }
                let ours = (ours * &weights)?.sum_all()?.backward()?;
                let grid = (grid * &weights)?.sum_all()?.backward()?;
                let vars = varmap.all_vars();
                let mut compared = 0;
                for var in vars.iter().filter(|v| ours.get(v.as_tensor()).is_some()) {
                    let (a, b) = (
                        ours.get(var.as_tensor()).unwrap(),
                        grid.get(var.as_tensor()),
                    );
                    let diff = (a - b.expect("the grid has it too"))?.abs()?.max_all()?;
                    assert!(diff.to_scalar::<f32>()? < 1e-4, "{lengths:?} gradient");
                    compared += 1;
                }
                assert_eq!(compared, 6, "query, key and value weights and biases");
            }
        }
        Ok(())
    }

    /// A training step's loss and every weight's gradient with the CUDA kernels (grid attention)
    /// against the CPU kernels (per-sequence attention), the same weights on both.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_training_step_matches_the_cpu() -> Result<()> {
        use candle_core::backprop::GradStore;
        assert!(
            crate::kernels::cuda::set_enabled(true),
            "CUDA kernels switched off"
        );
        let gpu = Device::new_cuda(0)?;
        let (cpu_vars, cpu_encoder) = tiny_encoder();
        let gpu_vars = VarMap::new();
        let config = cpu_encoder.config.clone();
        let gpu_encoder = BertEncoder::load(
            &config,
            VarBuilder::from_varmap(&gpu_vars, DType::F32, &gpu),
        )?;
        for (name, var) in cpu_vars.data().lock().unwrap().iter() {
            gpu_vars.data().lock().unwrap()[name].set(&var.as_tensor().to_device(&gpu)?)?;
        }
        let (ids, mask) = batch(&[7, 3, 5, 1], 7);
        let rng = DropoutRng::new(1);
        let step = |encoder: &BertEncoder, device: &Device| -> Result<(f32, GradStore)> {
            let (ids, mask) = (ids.to_device(device)?, mask.to_device(device)?);
            let hidden = encoder.forward(&ids, &mask, &Mode::Train(&rng))?;
            let pooled = mean_pool(&hidden, &mask)?;
            let loss = pooled.sqr()?.sum_all()?;
            Ok((loss.to_scalar::<f32>()?, loss.backward()?))
        };
        let (cpu_loss, cpu_grads) = step(&cpu_encoder, &Device::Cpu)?;
        let (gpu_loss, gpu_grads) = step(&gpu_encoder, &gpu)?;
        assert!(
            (cpu_loss - gpu_loss).abs() < 1e-4 * cpu_loss.abs().max(1.0),
            "loss"
        );
        let gpu_data = gpu_vars.data().lock().unwrap();
        for (name, var) in cpu_vars.data().lock().unwrap().iter() {
            let a = cpu_grads.get(var.as_tensor()).expect("a CPU gradient");
            let b = gpu_grads
                .get(gpu_data[name].as_tensor())
                .expect("a GPU gradient");
            let diff = crate::testing::max_diff(a, &b.to_device(&Device::Cpu)?);
            assert!(diff < 1e-3, "{name}: gradients differ by {diff}");
        }
        Ok(())
    }
}
