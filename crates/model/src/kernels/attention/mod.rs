//! Attention on the CPU, one sequence at a time over the encoder's rows, for inference and for
//! training.
//!
//! The general path (the encoder, `models::bert`) scatters rows into a `(batch, seq)` grid, splits heads
//! with transposing copies, multiplies with two batched GEMMs, adds the padding mask, takes a
//! softmax and copies back: about a dozen tensor operations a layer, each a pass over memory and a
//! dispatch, and in training as many again backward, each gradient allocated and summed on its
//! own. Here each sequence's rows are read in place, one head's columns at a time, and a sequence's
//! padding is simply not attended to (the general path's `-30000` makes a pad's weight exactly 0
//! in f32 too), so the two compute the same thing.
//!
//! - [`packed_attention`]: inference, each (sequence, head) one small task in plain loops.
//! - [`trainable_attention`]: training, from the fused query/key/value projection, with attention
//!   dropout and a backward pass; its small matrix products go through gemm.
use candle_core::{Result, Tensor};

mod infer;
mod train;

use crate::kernels::dropout::DropoutDraw;

/// One sequence's rows: `len` rows from row `first`, of which the first `keys` are real tokens and
/// the rest right padding, which no query attends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub first: usize,
    pub len: usize,
    pub keys: usize,
}

/// `softmax(q k^T / sqrt(head_dim)) v` per sequence and head, for inference. `qkv` is
/// `(rows, 3 * hidden)` f32 on the CPU: the query, key and value projections side by side, as one
/// matmul with the three weights stacked produces them; `segments` cover the rows in order.
/// Returns `(rows, hidden)`.
pub fn packed_attention(qkv: &Tensor, segments: &[Segment], heads: usize) -> Result<Tensor> {
    qkv.contiguous()?.apply_op1_no_bwd(&infer::PackedAttention {
        segments: segments.to_vec(),
        heads,
    })
}

/// The same attention for training, differentiable, from the same `qkv` (whose one matmul also
/// gives the backward pass one gradient to return instead of three to sum).
/// `dropout` zeroes attention weights as BERT's attention dropout does. Returns `(rows, hidden)`.
pub fn trainable_attention(
    qkv: &Tensor,
    segments: &[Segment],
    heads: usize,
    dropout: Option<DropoutDraw>,
) -> Result<Tensor> {
    qkv.contiguous()?.apply_op1(train::TrainableAttention {
        segments: segments.to_vec(),
        heads,
        dropout,
    })
}

/// Checks that `segments` cover `rows` rows in order, each with at least one real token, and that
/// `heads` divides `hidden`; returns the head dimension.
fn validate(
    name: &str,
    segments: &[Segment],
    rows: usize,
    hidden: usize,
    heads: usize,
) -> Result<usize> {
    if heads == 0 || !hidden.is_multiple_of(heads) {
        candle_core::bail!("{name}: {hidden} columns for {heads} heads")
    }
    let mut next = 0;
    for s in segments {
        if s.first != next || s.keys == 0 || s.keys > s.len {
            candle_core::bail!("{name}: bad segment {s:?} (expected first row {next})")
        }
        next += s.len;
    }
    if next != rows {
        candle_core::bail!("{name}: segments cover {next} of {rows} rows")
    }
    Ok(hidden / heads)
}

/// `data`, `width` values a row, split into one block of rows per segment (validated segments
/// cover it in order).
fn segment_blocks<'a>(
    mut data: &'a mut [f32],
    segments: &[Segment],
    width: usize,
) -> Vec<&'a mut [f32]> {
    let mut blocks = Vec::with_capacity(segments.len());
    for s in segments {
        let (block, rest) = data.split_at_mut(s.len * width);
        blocks.push(block);
        data = rest;
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inference attention against the formula computed directly, for head widths of 32, 48, 64
    /// and 80 (the AVX-512 path, where the CPU has it: scores four keys at a time, then the rest;
    /// score rows past 16 keys in masked tails; context rows in one or two register passes) and 8
    /// (the portable loops), over sequences of 1 to 21 keys with padding rows after them.
    #[test]
    fn packed_attention_is_softmax_attention() -> Result<()> {
        use candle_core::Device;
        let seg = |first, len, keys| Segment { first, len, keys };
        let segments = [
            seg(0, 1, 1),
            seg(1, 6, 5),
            seg(7, 7, 7),
            seg(14, 10, 9),
            seg(24, 22, 21),
        ];
        let rows = 46;
        for (heads, head_dim) in [(2, 32), (2, 48), (3, 64), (2, 80), (2, 8)] {
            let hidden = heads * head_dim;
            let values: Vec<f32> = (0..rows * 3 * hidden)
                .map(|i| ((i as f32 * 0.37).sin() * 1.3 + (i as f32 * 0.011).cos()) * 0.8)
                .collect();
            let qkv = Tensor::from_vec(values.clone(), (rows, 3 * hidden), &Device::Cpu)?;
            let got = packed_attention(&qkv, &segments, heads)?.to_vec2::<f32>()?;
            let at = |row: usize, part: usize, h: usize| {
                &values[row * 3 * hidden + part * hidden + h * head_dim..][..head_dim]
            };
            let mut worst = 0f32;
            for s in segments {
                for h in 0..heads {
                    for i in 0..s.len {
                        let scores: Vec<f64> = (0..s.keys)
                            .map(|j| {
                                let dot: f64 = (at(s.first + i, 0, h).iter())
                                    .zip(at(s.first + j, 1, h))
                                    .map(|(&a, &b)| a as f64 * b as f64)
                                    .sum();
                                dot / (head_dim as f64).sqrt()
                            })
                            .collect();
                        let top = scores.iter().cloned().fold(f64::MIN, f64::max);
                        let e: Vec<f64> = scores.iter().map(|x| (x - top).exp()).collect();
                        let total: f64 = e.iter().sum();
                        for c in 0..head_dim {
                            let expected: f64 = (0..s.keys)
                                .map(|j| e[j] / total * at(s.first + j, 2, h)[c] as f64)
                                .sum();
                            let value = got[s.first + i][h * head_dim + c] as f64;
                            worst = worst.max((value - expected).abs() as f32);
                        }
                    }
                }
            }
            assert!(worst < 1e-5, "heads {heads} x {head_dim}: {worst}");
        }
        Ok(())
    }

    /// The plain loops (what WASM runs) give what [`packed_attention`] gives (on this CPU perhaps
    /// the AVX-512 path, checked against the formula above).
    #[test]
    fn portable_heads_match_the_dispatched_ones() -> Result<()> {
        use candle_core::Device;
        let seg = |first, len, keys| Segment { first, len, keys };
        let segments = vec![seg(0, 3, 2), seg(3, 20, 19)];
        let rows = 23;
        for (heads, head_dim) in [(2, 8), (2, 32), (2, 40), (3, 64)] {
            let hidden = heads * head_dim;
            let values: Vec<f32> = (0..rows * 3 * hidden)
                .map(|i| (i as f32 * 0.29).cos() * 1.7)
                .collect();
            let qkv = Tensor::from_vec(values.clone(), (rows, 3 * hidden), &Device::Cpu)?;
            let dispatched = packed_attention(&qkv, &segments, heads)?.to_vec2::<f32>()?;
            let attention = infer::PackedAttention {
                segments: segments.clone(),
                heads,
            };
            for (sequence, s) in segments.iter().enumerate() {
                for h in 0..heads {
                    let portable = attention.head_portable(&values, hidden, sequence, h);
                    for (i, row) in portable.chunks_exact(head_dim).enumerate() {
                        let expected = &dispatched[s.first + i][h * head_dim..][..head_dim];
                        for (a, b) in row.iter().zip(expected) {
                            assert!((a - b).abs() < 1e-5, "{heads} x {head_dim}: {a} vs {b}");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn segments_must_cover_the_rows_in_order() {
        let seg = |first, len, keys| Segment { first, len, keys };
        assert_eq!(
            validate("t", &[seg(0, 3, 3), seg(3, 2, 1)], 5, 8, 2).unwrap(),
            4
        );
        for (segments, rows) in [
            (vec![seg(0, 3, 3)], 5),               // rows left over
            (vec![seg(0, 3, 3), seg(4, 1, 1)], 5), // a gap
            (vec![seg(0, 3, 0), seg(3, 2, 2)], 5), // no real token
            (vec![seg(0, 3, 4), seg(3, 2, 2)], 5), // more keys than rows
        ] {
            assert!(
                validate("t", &segments, rows, 8, 2).is_err(),
                "{segments:?}"
            );
        }
        assert!(validate("t", &[seg(0, 1, 1)], 1, 8, 3).is_err());
        assert!(validate("t", &[seg(0, 1, 1)], 1, 8, 0).is_err());
    }
}
