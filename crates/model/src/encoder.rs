//! The BERT encoder (Devlin et al. 2019), written once for every head, for training and inference,
//! natively and in the browser. Parameter names follow Hugging Face's `BertModel`, so any HF BERT
//! checkpoint loads and our saved models load back into `transformers`. Weights come from a
//! [`Weights`] source: trainable variables (float) or an exported GGUF model (quantized), through
//! the same code.
use candle_core::{DType, Result, Tensor, D};
use candle_nn::Embedding;

use crate::config::BertConfig;
use crate::layers::{Dense, EmbeddingTable, LayerNorm, Mode};
use crate::weights::Weights;

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
        let words = self.word.forward(input_ids)?;
        let positions = self.position.embeddings().narrow(0, 0, seq_len)?;
        let segment = self.token_type.embeddings().narrow(0, 0, 1)?;
        let xs = words.broadcast_add(&positions.broadcast_add(&segment)?)?;
        let xs = mode.layer_norm(&self.norm, &xs)?;
        mode.dropout(&xs, self.dropout)
    }
}

struct SelfAttention {
    query: Dense,
    key: Dense,
    value: Dense,
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
        Ok(Self {
            query: own.pp("query").dense(h, h)?,
            key: own.pp("key").dense(h, h)?,
            value: own.pp("value").dense(h, h)?,
            output: out.pp("dense").dense(h, h)?,
            norm: LayerNorm::load(h, cfg.layer_norm_eps, out.pp("LayerNorm"))?,
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            attention_dropout: cfg.attention_probs_dropout_prob,
            hidden_dropout: cfg.hidden_dropout_prob,
        })
    }

    fn split_heads(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        xs.reshape((b, t, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn forward(&self, xs: &Tensor, additive_mask: &Tensor, mode: &Mode) -> Result<Tensor> {
        let (b, t, h) = xs.dims3()?;
        let q = self.split_heads(&self.query.forward(xs)?)?;
        let k = self.split_heads(&self.key.forward(xs)?)?;
        let v = self.split_heads(&self.value.forward(xs)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(additive_mask)?;
        let probs = mode.softmax_last_dim(&scores)?;
        let probs = mode.dropout(&probs, self.attention_dropout)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        let out = mode.dropout(&self.output.forward(&context)?, self.hidden_dropout)?;
        mode.layer_norm(&self.norm, &(out + xs)?)
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
        let inner = self.intermediate.forward(xs)?;
        let inner = match self.act.as_str() {
            "relu" => inner.relu()?,
            "gelu_new" | "gelu_pytorch_tanh" => inner.gelu()?,
            _ => crate::activations::gelu_erf(&inner)?,
        };
        let out = mode.dropout(&self.output.forward(&inner)?, self.dropout)?;
        mode.layer_norm(&self.norm, &(out + xs)?)
    }
}

struct Layer {
    attention: SelfAttention,
    feed_forward: FeedForward,
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
        })
    }

    /// `input_ids` and `attention_mask` are `(batch, seq)` u32 tensors (mask 1 = real token).
    /// Returns `(batch, seq, hidden)` in f32.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        mode: &Mode,
    ) -> Result<Tensor> {
        let mut xs = self
            .embeddings
            .forward(input_ids, mode)?
            .to_dtype(self.compute_dtype)?;
        let additive_mask = additive_attention_mask(attention_mask, xs.dtype())?;
        for layer in &self.layers {
            xs = layer.attention.forward(&xs, &additive_mask, mode)?;
            xs = layer.feed_forward.forward(&xs, mode)?;
        }
        xs.to_dtype(DType::F32)
    }
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
