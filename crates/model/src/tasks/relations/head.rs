//! The heads on the encoder's states: max-pooling over sub-word rows ([`PooledRows`]), the span
//! classifier and the relation classifier, each a linear layer to its classes plus, for SpERT.MT,
//! a binary one on the same representation. They own only their parameters; the states and the
//! width embeddings are passed in.
use std::ops::Range;

use candle_core::{Result, Tensor, D};

use crate::nn::{Dense, Mode, Weights};

/// What stands in for "no row" when pooling: below any hidden state, so a max never picks it.
const FLOOR: f32 = -1e30;

/// A padded batch's hidden states as rows (sentence `b`'s position `i` is row `b * seq + i`), with
/// one row of -1e30 after them that pads ranges to a common length.
pub struct PooledRows {
    table: Tensor,
    seq: usize,
}

impl PooledRows {
    /// `hidden` is `(batch, seq, hidden)`.
    pub fn new(hidden: &Tensor) -> Result<Self> {
        let (batch, seq, size) = hidden.dims3()?;
        let floor = Tensor::full(FLOOR, (1, size), hidden.device())?.to_dtype(hidden.dtype())?;
        let table = Tensor::cat(&[&hidden.reshape((batch * seq, size))?, &floor], 0)?;
        Ok(Self { table, seq })
    }

    /// The row of sentence `sentence`'s position `position`.
    pub fn row(&self, sentence: usize, position: usize) -> usize {
        sentence * self.seq + position
    }

    /// The rows at `rows`, `(rows, hidden)`.
    pub fn gather(&self, rows: &[usize]) -> Result<Tensor> {
        let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        self.table
            .index_select(&Tensor::new(ids, self.table.device())?, 0)
    }

    /// The element-wise maximum of each range of rows, `(ranges, hidden)`; zeros for an empty
    /// range (SpERT's context between touching spans).
    pub fn max_pool(&self, ranges: &[Range<usize>]) -> Result<Tensor> {
        let size = self.table.dim(1)?;
        let floor = self.table.dim(0)? - 1;
        let width = ranges.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(ranges.len() * width);
        for r in ranges {
            ids.extend(r.clone().map(|i| i as u32));
            ids.extend(std::iter::repeat_n(floor as u32, width - r.len()));
        }
        let ids = Tensor::new(ids, self.table.device())?;
        let pooled = self
            .table
            .index_select(&ids, 0)?
            .reshape((ranges.len(), width, size))?
            .max(1)?;
        if ranges.iter().all(|r| !r.is_empty()) {
            return Ok(pooled);
        }
        let filled: Vec<f32> = ranges
            .iter()
            .map(|r| f32::from(!r.is_empty() as u8))
            .collect();
        let filled = Tensor::from_vec(filled, (ranges.len(), 1), self.table.device())?;
        pooled.broadcast_mul(&filled.to_dtype(pooled.dtype())?)
    }
}

/// The positions strictly between two ranges (in either order); empty when they touch or overlap.
pub fn between(a: &Range<usize>, b: &Range<usize>) -> Range<usize> {
    if a.end <= b.start {
        a.end..b.start
    } else if b.end <= a.start {
        b.end..a.start
    } else {
        0..0
    }
}

/// A linear layer to `classes` outputs and, optionally, one-logit heads beside it over the same
/// dropped-out representation: SpERT.MT's binary head (`binary.` under the same prefix) and, for
/// spans, its IoU head (`iou.`).
struct Scorer {
    classes: Dense,
    binary: Option<Dense>,
    iou: Option<Dense>,
    dropout: f32,
}

/// A scorer's outputs: logits `(rows, classes)`, and the binary and IoU logits `(rows,)` of the
/// heads it has.
pub struct Scored {
    pub logits: Tensor,
    pub binary: Option<Tensor>,
    pub iou: Option<Tensor>,
}

impl Scorer {
    fn load(
        weights: &Weights,
        input: usize,
        classes: usize,
        (binary, iou): (bool, bool),
        dropout: f32,
    ) -> Result<Self> {
        let one = |on: bool, name: &str| {
            on.then(|| Dense::initialised(&weights.pp(name), input, 1))
                .transpose()
        };
        Ok(Self {
            classes: Dense::initialised(weights, input, classes)?,
            binary: one(binary, "binary")?,
            iou: one(iou, "iou")?,
            dropout,
        })
    }

    /// `(rows, input)` -> the logits of each head, all from one matrix product.
    fn forward(&self, repr: &Tensor, mode: &Mode) -> Result<Scored> {
        let repr = mode.dropout(repr, self.dropout)?;
        if self.binary.is_none() && self.iou.is_none() {
            return Ok(Scored {
                logits: self.classes.forward(&repr)?,
                binary: None,
                iou: None,
            });
        }
        let mut layers = vec![&self.classes];
        layers.extend(self.binary.as_ref());
        layers.extend(self.iou.as_ref());
        let all = Dense::forward_stacked(&layers, &repr)?;
        let classes = all.dim(1)? - (layers.len() - 1);
        let column = |c: usize| all.narrow(1, c, 1)?.squeeze(1)?.contiguous();
        let binary = self.binary.as_ref().map(|_| column(classes)).transpose()?;
        let next = classes + usize::from(self.binary.is_some());
        Ok(Scored {
            logits: all.narrow(1, 0, classes)?.contiguous()?,
            binary,
            iou: self.iou.as_ref().map(|_| column(next)).transpose()?,
        })
    }
}

/// Entity classification of spans: `[CLS] ⊕ span max-pool ⊕ width embedding` to `1 + types`
/// logits (class 0 "none"), SpERT.MT's entity-vs-non-entity logit and its IoU logit (the span's
/// predicted IoU with the gold entity it overlaps, through a sigmoid).
pub struct SpanClassifier {
    scorer: Scorer,
}

impl SpanClassifier {
    /// `hidden`: the encoder's size; `width`: the width embedding's; `heads`: whether the binary
    /// and the IoU heads exist.
    pub fn load<'a>(
        hidden: usize,
        width: usize,
        classes: usize,
        heads: (bool, bool),
        dropout: f32,
        weights: impl Into<Weights<'a>>,
    ) -> Result<Self> {
        let scorer = Scorer::load(&weights.into(), 2 * hidden + width, classes, heads, dropout)?;
        Ok(Self { scorer })
    }

    pub fn has_binary(&self) -> bool {
        self.scorer.binary.is_some()
    }

    pub fn has_iou(&self) -> bool {
        self.scorer.iou.is_some()
    }

    /// Rows of `[CLS]` states, pooled spans and width embeddings, in SpERT's order.
    pub fn forward(
        &self,
        cls: &Tensor,
        pooled: &Tensor,
        widths: &Tensor,
        mode: &Mode,
    ) -> Result<Scored> {
        self.scorer
            .forward(&Tensor::cat(&[cls, pooled, widths], D::Minus1)?, mode)
    }
}

/// Relation classification of span pairs: `context ⊕ head pool ⊕ tail pool ⊕ head width ⊕ tail
/// width` (SpERT's order), with SpERT.MT's argument class distributions appended when enriched,
/// to one logit per relation type, and SpERT.MT's related-vs-unrelated logit.
pub struct RelationClassifier {
    scorer: Scorer,
    enriched: Option<usize>,
}

impl RelationClassifier {
    /// `enriched`: the number of entity classes appended per argument, if any.
    pub fn load<'a>(
        hidden: usize,
        width: usize,
        relation_types: usize,
        enriched: Option<usize>,
        binary: bool,
        dropout: f32,
        weights: impl Into<Weights<'a>>,
    ) -> Result<Self> {
        let input = 3 * hidden + 2 * width + 2 * enriched.unwrap_or(0);
        let scorer = Scorer::load(
            &weights.into(),
            input,
            relation_types,
            (binary, false),
            dropout,
        )?;
        Ok(Self { scorer, enriched })
    }

    pub fn has_binary(&self) -> bool {
        self.scorer.binary.is_some()
    }

    pub fn enriched(&self) -> Option<usize> {
        self.enriched
    }

    /// `parts` in the order of the representation: context, head and tail pools, head and tail
    /// widths, then (enriched) head and tail class distributions.
    pub fn forward(&self, parts: &[&Tensor], mode: &Mode) -> Result<Scored> {
        let expected = if self.enriched.is_some() { 7 } else { 5 };
        if parts.len() != expected {
            candle_core::bail!("{} pair representation parts for {expected}", parts.len());
        }
        self.scorer.forward(&Tensor::cat(parts, D::Minus1)?, mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two sentences of 4 positions with 2-dimensional states, by hand.
    fn rows() -> Result<PooledRows> {
        let hidden = Tensor::new(
            &[
                [[0f32, 0.], [1., -5.], [3., -1.], [2., 7.]],
                [[9., 9.], [-1., -2.], [-3., -4.], [-2., -8.]],
            ],
            &Device::Cpu,
        )?;
        PooledRows::new(&hidden)
    }

    #[test]
    fn spans_pool_their_rows_and_empty_ranges_are_zero() -> Result<()> {
        let rows = rows()?;
        assert_eq!(rows.row(1, 2), 6);
        let r = |b: usize, range: Range<usize>| rows.row(b, range.start)..rows.row(b, range.end);
        let pooled = rows.max_pool(&[r(0, 1..3), r(0, 3..4), r(1, 1..4), r(0, 2..2)])?;
        assert_eq!(
            pooled.to_vec2::<f32>()?,
            [[3., -1.], [2., 7.], [-1., -2.], [0., 0.]]
        );
        assert_eq!(
            rows.gather(&[0, 4])?.to_vec2::<f32>()?,
            [[0., 0.], [9., 9.]]
        );
        Ok(())
    }

    #[test]
    fn context_is_strictly_between_the_spans() -> Result<()> {
        // Words as sub-words 1..2, 2..4, 4..5, 6..8.
        assert_eq!(between(&(1..2), &(4..5)), 2..4);
        assert_eq!(between(&(4..5), &(1..2)), 2..4);
        assert!(between(&(1..2), &(2..4)).is_empty()); // adjacent
        assert!(between(&(2..4), &(1..2)).is_empty());
        assert!(between(&(1..4), &(2..3)).is_empty()); // nested
        assert!(between(&(1..3), &(2..5)).is_empty()); // overlapping
        let rows = rows()?;
        let context = rows.max_pool(&[between(&(0..1), &(3..4)), between(&(1..2), &(2..3))])?;
        assert_eq!(context.to_vec2::<f32>()?, [[3., -1.], [0., 0.]]);
        Ok(())
    }

    /// Only the rows a max picks get a gradient; an empty range's floor gives none.
    #[test]
    fn pooling_gradients_reach_the_picked_rows() -> Result<()> {
        let var = candle_core::Var::from_tensor(&Tensor::new(
            &[[[0f32, 0.], [1., -5.], [3., -1.], [2., 7.]]],
            &Device::Cpu,
        )?)?;
        let rows = PooledRows::new(var.as_tensor())?;
        let pooled = rows.max_pool(&[1..3, 2..2])?;
        let grads = pooled.sum_all()?.backward()?;
        let g = grads.get(var.as_tensor()).unwrap().squeeze(0)?;
        assert_eq!(
            g.to_vec2::<f32>()?,
            [[0., 0.], [0., 0.], [1., 1.], [0., 0.]]
        );
        Ok(())
    }
}
