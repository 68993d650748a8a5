//! BINDER's two encoders, its heads and its scores (see the module doc of [`super`]).
//!
//! Parameter names follow the reference where it has them: the text encoder under `bert.` (as
//! every task here, so the shared encoder code and sentence embeddings read it), the type encoder
//! under `type_encoder.`, then `start_linear`, `end_linear`, `span_linear` (`(128, 2h + 128)`),
//! `width_embeddings`, `type_start_linear`, `type_end_linear`, `type_span_linear` and the
//! log-scales `start_logit_scale`, `end_logit_scale`, `span_logit_scale`.
use std::ops::Range;

use candle_core::{Device, Result, Tensor};
use candle_nn::Init;
use multitag_core::binder::{candidate_spans, decode, Overlaps, ScoredSpan};
use multitag_core::relations::WordSpan;

use crate::config::BertConfig;
use crate::models::BertEncoder;
use crate::nn::{normalize_rows, Dense, Mode, Weights};
use crate::tasks::relations::SubwordSentence;
use crate::tokenize::collate;

/// The reference's settings ([`Default`]); `dim` is its `linear_size`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BinderSettings {
    pub dim: usize,
    pub dropout: f32,
    /// The widest span decoding considers, in sub-words (training has no cap).
    pub max_span_subwords: usize,
    pub start_weight: f64,
    pub end_weight: f64,
    pub span_weight: f64,
    pub ner_weight: f64,
    pub threshold_weight: f64,
    pub overlaps: Overlaps,
}

impl Default for BinderSettings {
    fn default() -> Self {
        Self {
            dim: 128,
            dropout: 0.1,
            max_span_subwords: 30,
            start_weight: 0.2,
            end_weight: 0.2,
            span_weight: 0.6,
            ner_weight: 0.5,
            threshold_weight: 0.5,
            overlaps: Overlaps::Flat,
        }
    }
}

/// The reference's initial log-scale, `ln(1 / 0.07)`.
pub const INITIAL_LOG_SCALE: f64 = 2.659_260_036_932_778;

pub struct BinderModel {
    pub text: BertEncoder,
    pub type_encoder: BertEncoder,
    start: Dense,
    end: Dense,
    /// `span_linear`'s weight `(dim, 2h + dim)` and bias, applied by column blocks.
    span_weight: Tensor,
    span_bias: Tensor,
    /// `width_embeddings`: a row per width in sub-words, `0..=positions`.
    width: Tensor,
    type_start: Dense,
    type_end: Dense,
    type_span: Dense,
    start_scale: Tensor,
    end_scale: Tensor,
    span_scale: Tensor,
    pub settings: BinderSettings,
}

/// Each type's start, end and span vectors, `(types, dim)`, L2-normalised.
pub struct TypeVectors {
    pub start: Tensor,
    pub end: Tensor,
    pub span: Tensor,
}

impl TypeVectors {
    pub fn len(&self) -> usize {
        self.span.dim(0).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` types' vectors.
    pub fn first(&self, n: usize) -> Result<TypeVectors> {
        Ok(TypeVectors {
            start: self.start.narrow(0, 0, n)?,
            end: self.end.narrow(0, 0, n)?,
            span: self.span.narrow(0, 0, n)?,
        })
    }

    /// These types followed by `more`'s (a set extended by types described at tag time).
    pub fn concat(&self, more: &TypeVectors) -> Result<TypeVectors> {
        Ok(TypeVectors {
            start: Tensor::cat(&[&self.start, &more.start], 0)?,
            end: Tensor::cat(&[&self.end, &more.end], 0)?,
            span: Tensor::cat(&[&self.span, &more.span], 0)?,
        })
    }
}

/// A weight matrix `(rows, cols)` at `<prefix>.weight`: N(0, 0.02) when created, as BERT's.
fn matrix(weights: &Weights, rows: usize, cols: usize) -> Result<Tensor> {
    match weights {
        Weights::Float(vb) => {
            let init = Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            };
            vb.get_with_hints((rows, cols), "weight", init)
        }
        w => Ok(w.float_embedding(rows, cols)?.embeddings().clone()),
    }
}

impl BinderModel {
    /// `weights` is the checkpoint root.
    pub fn load<'a>(
        config: &BertConfig,
        settings: BinderSettings,
        weights: impl Into<Weights<'a>>,
    ) -> Result<Self> {
        let vb = weights.into();
        let (h, d) = (config.hidden_size, settings.dim);
        if d == 0 || !(0.0..1.0).contains(&settings.dropout) || settings.max_span_subwords == 0 {
            candle_core::bail!("BINDER settings out of range: {settings:?}");
        }
        let scale = |name: &str| vb.vector(1, name, Init::Const(INITIAL_LOG_SCALE));
        Ok(Self {
            text: BertEncoder::load(config, vb.pp("bert"))?,
            type_encoder: BertEncoder::load(config, vb.pp("type_encoder"))?,
            start: Dense::initialised(&vb.pp("start_linear"), h, d)?,
            end: Dense::initialised(&vb.pp("end_linear"), h, d)?,
            span_weight: matrix(&vb.pp("span_linear"), d, 2 * h + d)?,
            span_bias: vb.pp("span_linear").vector(d, "bias", Init::Const(0.0))?,
            width: matrix(
                &vb.pp("width_embeddings"),
                config.max_position_embeddings + 1,
                d,
            )?,
            type_start: Dense::initialised(&vb.pp("type_start_linear"), h, d)?,
            type_end: Dense::initialised(&vb.pp("type_end_linear"), h, d)?,
            type_span: Dense::initialised(&vb.pp("type_span_linear"), h, d)?,
            start_scale: scale("start_logit_scale")?,
            end_scale: scale("end_logit_scale")?,
            span_scale: scale("span_logit_scale")?,
            settings,
        })
    }

    /// The longest sentence the text encoder takes, in sub-words.
    pub fn max_positions(&self) -> usize {
        self.text.config.max_position_embeddings
    }

    /// `L2(dropout(layer(xs)))`.
    fn project(&self, layer: &Dense, xs: &Tensor, mode: &Mode) -> Result<Tensor> {
        normalize_rows(&mode.dropout(&layer.forward(xs)?, self.settings.dropout)?)
    }

    /// The vectors of types given by their descriptions' sub-word ids (`[CLS] ... [SEP]`).
    pub fn type_vectors(
        &self,
        descriptions: &[&[u32]],
        device: &Device,
        mode: &Mode,
    ) -> Result<TypeVectors> {
        let (ids, mask) = collate(descriptions, 0, device)?;
        let cls = self
            .type_encoder
            .forward(&ids, &mask, mode)?
            .narrow(1, 0, 1)?
            .squeeze(1)?;
        Ok(TypeVectors {
            start: self.project(&self.type_start, &cls, mode)?,
            end: self.project(&self.type_end, &cls, mode)?,
            span: self.project(&self.type_span, &cls, mode)?,
        })
    }

    /// The text encoder's top-layer states of a batch of sentences as rows `(batch * seq, h)`
    /// (sentence `b`'s position `i` is row `b * seq + i`), and `seq`.
    pub fn encode(
        &self,
        sentences: &[&[u32]],
        device: &Device,
        mode: &Mode,
    ) -> Result<(Tensor, usize)> {
        let (ids, mask) = collate(sentences, 0, device)?;
        let states = self.text.forward(&ids, &mask, mode)?;
        let (batch, seq, h) = states.dims3()?;
        Ok((states.reshape((batch * seq, h))?, seq))
    }

    /// `exp(scale) · cosine` of `(n, dim)` unit rows against `(types, dim)` ones: `(n, types)`.
    fn scores(xs: &Tensor, types: &Tensor, log_scale: &Tensor) -> Result<Tensor> {
        xs.matmul(&types.t()?)?.broadcast_mul(&log_scale.exp()?)
    }

    fn gather(rows: &Tensor, at: &[u32]) -> Result<Tensor> {
        rows.index_select(&Tensor::new(at, rows.device())?, 0)
    }

    /// Start scores of the rows at `positions`, `(positions, types)`.
    pub fn start_scores(
        &self,
        rows: &Tensor,
        positions: &[u32],
        types: &TypeVectors,
        mode: &Mode,
    ) -> Result<Tensor> {
        let xs = self.project(&self.start, &Self::gather(rows, positions)?, mode)?;
        Self::scores(&xs, &types.start, &self.start_scale)
    }

    /// End scores of the rows at `positions`, `(positions, types)`.
    pub fn end_scores(
        &self,
        rows: &Tensor,
        positions: &[u32],
        types: &TypeVectors,
        mode: &Mode,
    ) -> Result<Tensor> {
        let xs = self.project(&self.end, &Self::gather(rows, positions)?, mode)?;
        Self::scores(&xs, &types.end, &self.end_scale)
    }

    /// Span scores of `spans` (first row, last row, width in sub-words), `(spans, types)`.
    pub fn span_scores(
        &self,
        rows: &Tensor,
        spans: &[[u32; 3]],
        types: &TypeVectors,
        mode: &Mode,
    ) -> Result<Tensor> {
        let h = rows.dim(1)?;
        let d = self.settings.dim;
        let block = |start: usize, len: usize| self.span_weight.narrow(1, start, len)?.t();
        let last_width = (self.width.dim(0)? - 1) as u32;
        let firsts: Vec<u32> = spans.iter().map(|s| s[0]).collect();
        let lasts: Vec<u32> = spans.iter().map(|s| s[1]).collect();
        let widths: Vec<u32> = spans.iter().map(|s| s[2].min(last_width)).collect();
        let first = Self::gather(rows, &firsts)?.matmul(&block(0, h)?)?;
        let last = Self::gather(rows, &lasts)?.matmul(&block(h, h)?)?;
        let width = Self::gather(&self.width, &widths)?.matmul(&block(2 * h, d)?)?;
        let linear = ((first + last)? + width)?.broadcast_add(&self.span_bias)?;
        let xs = normalize_rows(&mode.dropout(&linear, self.settings.dropout)?)?;
        Self::scores(&xs, &types.span, &self.span_scale)
    }

    /// Each sentence's entities (word spans with their type index and score), decoded as the
    /// settings say: spans of at most `max_span_subwords` that beat their type's `[CLS]` span.
    pub fn predict(
        &self,
        sentences: &[&SubwordSentence],
        types: &TypeVectors,
        device: &Device,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        if sentences.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&[u32]> = sentences.iter().map(|s| s.ids.as_slice()).collect();
        let (rows, seq) = self.encode(&ids, device, &Mode::Infer)?;
        let candidates = Candidates::new(sentences, seq, Some(self.settings.max_span_subwords));
        let scores = self
            .span_scores(&rows, &candidates.spans, types, &Mode::Infer)?
            .to_vec2::<f32>()?;
        Ok(candidates
            .sentences
            .iter()
            .map(|c| decode(above_threshold(&scores, c), self.settings.overlaps))
            .collect())
    }
}

/// The spans of one sentence that score strictly above their type's `[CLS]` span (BINDER's
/// dynamic threshold), from the batch's span scores `(spans, types)`.
pub fn above_threshold(scores: &[Vec<f32>], block: &SentenceCandidates) -> Vec<ScoredSpan> {
    let threshold = &scores[block.spans.start];
    let mut found = Vec::new();
    for (k, span) in block.span_words.iter().enumerate() {
        let row = &scores[block.spans.start + 1 + k];
        for (t, (&score, &cls)) in row.iter().zip(threshold).enumerate() {
            if score > cls {
                found.push(ScoredSpan {
                    span: *span,
                    type_index: t,
                    score,
                });
            }
        }
    }
    found
}

/// The candidates of a batch of sentences, as rows of the encoded batch: per sentence `[CLS]`
/// first, then each word's first sub-word (starts), each word's last (ends), and each word span
/// (`[CLS]`'s own span first, width 1).
pub struct Candidates {
    pub starts: Vec<u32>,
    pub ends: Vec<u32>,
    /// First row, last row, width in sub-words.
    pub spans: Vec<[u32; 3]>,
    pub sentences: Vec<SentenceCandidates>,
}

/// One sentence's blocks in [`Candidates`]' lists; `span_words[k]` is span `spans.start + 1 + k`.
pub struct SentenceCandidates {
    pub starts: Range<usize>,
    pub ends: Range<usize>,
    pub spans: Range<usize>,
    pub span_words: Vec<WordSpan>,
}

impl Candidates {
    /// Sentence `b` is at rows `b * seq ..`; spans wider than `max_span_subwords` are left out.
    pub fn new(
        sentences: &[&SubwordSentence],
        seq: usize,
        max_span_subwords: Option<usize>,
    ) -> Self {
        let mut out = Candidates {
            starts: Vec::new(),
            ends: Vec::new(),
            spans: Vec::new(),
            sentences: Vec::with_capacity(sentences.len()),
        };
        for (b, sentence) in sentences.iter().enumerate() {
            let row = |position: usize| (b * seq + position) as u32;
            let (starts, ends, spans) = (out.starts.len(), out.ends.len(), out.spans.len());
            out.starts.push(row(0));
            out.ends.push(row(0));
            out.spans.push([row(0), row(0), 1]);
            for w in &sentence.words {
                out.starts.push(row(w.start));
                out.ends.push(row(w.end - 1));
            }
            let span_words = candidate_spans(&sentence.words, max_span_subwords);
            for span in &span_words {
                let subwords = sentence.subwords(*span);
                let (first, last) = (subwords.start, subwords.end - 1);
                out.spans
                    .push([row(first), row(last), (last - first + 1) as u32]);
            }
            out.sentences.push(SentenceCandidates {
                starts: starts..out.starts.len(),
                ends: ends..out.ends.len(),
                spans: spans..out.spans.len(),
                span_words,
            });
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::{VarBuilder, VarMap};

    /// A one-layer encoder pair without dropout, heads of 8 dimensions.
    pub(crate) fn tiny() -> (VarMap, BinderModel) {
        let config = BertConfig::from_json(
            "tiny",
            r#"{"vocab_size": 30, "hidden_size": 16, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
                "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
                "max_position_embeddings": 16, "type_vocab_size": 2}"#,
        )
        .unwrap();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let settings = BinderSettings {
            dim: 8,
            dropout: 0.0,
            ..BinderSettings::default()
        };
        let model = BinderModel::load(&config, settings, vb).unwrap();
        (varmap, model)
    }

    /// `[CLS]`, words of the given sub-word counts (ids from 4), `[SEP]`.
    pub(crate) fn sentence(word_lengths: &[usize]) -> SubwordSentence {
        let mut ids = vec![1];
        let mut words = Vec::new();
        for &n in word_lengths {
            let start = ids.len();
            ids.extend((0..n).map(|k| 4 + ((start + k) % 20) as u32));
            words.push(start..ids.len());
        }
        ids.push(2);
        SubwordSentence { ids, words }
    }

    #[test]
    fn candidates_are_cls_then_word_boundaries() {
        let (a, b) = (sentence(&[1, 2, 1]), sentence(&[1]));
        let all = Candidates::new(&[&a, &b], 6, None);
        assert_eq!(all.starts, [0, 1, 2, 4, 6, 7]);
        assert_eq!(all.ends, [0, 1, 3, 4, 6, 7]);
        assert_eq!(
            all.spans[..7],
            [
                [0, 0, 1],
                [1, 1, 1],
                [1, 3, 3],
                [1, 4, 4],
                [2, 3, 2],
                [2, 4, 3],
                [4, 4, 1]
            ]
        );
        assert_eq!(all.spans[7..], [[6, 6, 1], [7, 7, 1]]);
        assert_eq!(all.sentences[1].spans, 7..9);
        // The cap counts sub-words: the two-sub-word word alone fits 2, with a neighbour not.
        let capped = Candidates::new(&[&a], 6, Some(2));
        let spans: Vec<(usize, usize)> = capped.sentences[0]
            .span_words
            .iter()
            .map(|s| (s.start, s.end))
            .collect();
        assert_eq!(spans, [(0, 1), (1, 2), (2, 3)]);
    }

    /// The span head applied by column blocks is the reference's linear layer over
    /// `[h_i; h_j; width]`.
    #[test]
    fn span_scores_are_the_linear_layer_over_the_concatenation() -> Result<()> {
        let (_, model) = tiny();
        let device = Device::Cpu;
        let rows = Tensor::randn(0f32, 1.0, (6, 16), &device)?;
        let types = model.type_vectors(&[&[1, 5, 6, 2], &[1, 7, 2]], &device, &Mode::Infer)?;
        let spans = [[0u32, 0, 1], [1, 3, 3], [2, 5, 4], [4, 4, 1]];
        let ours = model.span_scores(&rows, &spans, &types, &Mode::Infer)?;
        let concat: Vec<Tensor> = spans
            .iter()
            .map(|[i, j, w]| {
                Tensor::cat(
                    &[
                        rows.get(*i as usize)?,
                        rows.get(*j as usize)?,
                        model.width.get(*w as usize)?,
                    ],
                    0,
                )
            })
            .collect::<Result<_>>()?;
        let linear = Tensor::stack(&concat, 0)?
            .matmul(&model.span_weight.t()?)?
            .broadcast_add(&model.span_bias)?;
        let reference = normalize_rows(&linear)?
            .matmul(&types.span.t()?)?
            .affine(INITIAL_LOG_SCALE.exp(), 0.0)?;
        assert_eq!(ours.dims(), [4, 2]);
        assert!(crate::testing::max_diff(&ours, &reference) < 1e-5);
        Ok(())
    }

    #[test]
    fn a_span_is_kept_when_it_beats_its_types_cls_span() {
        let s = sentence(&[1, 1]);
        let candidates = Candidates::new(&[&s], 4, None);
        // Rows: [CLS] span, then (0,1), (0,2), (1,2); columns: two types.
        let scores = vec![
            vec![1.0, 5.0],
            vec![1.5, 4.0],
            vec![1.0, 6.0],
            vec![0.5, 5.5],
        ];
        let kept: Vec<(usize, usize, usize)> = above_threshold(&scores, &candidates.sentences[0])
            .iter()
            .map(|s| (s.span.start, s.span.end, s.type_index))
            .collect();
        // Equal to the threshold is not above it.
        assert_eq!(kept, [(0, 1, 0), (0, 2, 1), (1, 2, 1)]);
    }

    #[test]
    fn the_log_scales_start_at_one_over_0_07() {
        let (varmap, _) = tiny();
        let vars = varmap.data().lock().unwrap();
        for name in ["start", "end", "span"] {
            let scale = vars[&format!("{name}_logit_scale")]
                .to_vec1::<f32>()
                .unwrap();
            assert!((scale[0].exp() - 1.0 / 0.07).abs() < 1e-4);
        }
        assert!(vars.contains_key("type_encoder.embeddings.word_embeddings.weight"));
        assert!(vars.contains_key("bert.embeddings.word_embeddings.weight"));
    }
}
