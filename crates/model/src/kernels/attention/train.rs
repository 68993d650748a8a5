//! Training attention: forward and backward one sequence at a time (all its heads), parallel over
//! sequences, each writing its own block of output rows.
//!
//! The backward pass recomputes each head's attention weights from `q` and `k` rather than keeping
//! them from the forward pass: one more small product per head, against holding a `(seq, seq)`
//! matrix per head and layer (75 MB a step for 16 descriptions of 128 tokens) between the passes.
//! The dropout mask is redrawn the same way, from a per-call seed and the (sequence, head) index.
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::dispatch::f32_slice;

use super::Segment;
use crate::kernels::dropout::DropoutDraw;
use crate::kernels::math::softmax_in_place;
use crate::kernels::strided::{matmul, matmul_new, MatMut, MatRef};

pub(super) struct TrainableAttention {
    pub segments: Vec<Segment>,
    pub heads: usize,
    pub dropout: Option<DropoutDraw>,
}

/// The shapes one call works with.
#[derive(Clone, Copy)]
struct Dims {
    hidden: usize,
    head_dim: usize,
}

impl Dims {
    /// `qkv`'s row width: query, key and value side by side.
    fn fused(self) -> usize {
        3 * self.hidden
    }
}

/// One head's query `(len, head_dim)`, key and value `(keys, head_dim)` in a segment's `qkv`
/// rows.
fn head_views(qkv: &[f32], dims: Dims, s: Segment, head: usize) -> [MatRef<'_>; 3] {
    let width = dims.fused();
    let rows = &qkv[s.first * width..(s.first + s.len) * width];
    let at = |part: usize| &rows[part * dims.hidden + head * dims.head_dim..];
    [
        MatRef::rows(at(0), s.len, dims.head_dim, width),
        MatRef::rows(at(1), s.keys, dims.head_dim, width),
        MatRef::rows(at(2), s.keys, dims.head_dim, width),
    ]
}

impl TrainableAttention {
    fn dims(&self, name: &str, layout: &Layout) -> Result<(usize, Dims)> {
        let (rows, width) = layout.shape().dims2()?;
        if !width.is_multiple_of(3) {
            candle_core::bail!("{name}: {width} columns are not query, key and value")
        }
        let hidden = width / 3;
        let head_dim = super::validate(name, &self.segments, rows, hidden, self.heads)?;
        Ok((rows, Dims { hidden, head_dim }))
    }

    /// `softmax(q k^T / sqrt(head_dim))`, `(len, keys)` row-major.
    fn weights(&self, q: MatRef, k: MatRef, s: Segment, dims: Dims) -> Vec<f32> {
        let scale = 1.0 / (dims.head_dim as f32).sqrt();
        let mut p = matmul_new(q, k.t(), scale, false);
        p.chunks_exact_mut(s.keys).for_each(softmax_in_place);
        p
    }

    /// The scaled keep-mask of one (segment, head), the same in both passes.
    fn keep_mask(&self, segment: usize, head: usize, n: usize) -> Option<Vec<f32>> {
        let index = (segment * self.heads + head) as u64;
        Some(self.dropout?.keep_mask(index, n))
    }

    /// A segment's context rows, `(len, hidden)`, into `out`.
    fn forward_segment(&self, qkv: &[f32], dims: Dims, index: usize, out: &mut [f32]) {
        let s = self.segments[index];
        for head in 0..self.heads {
            let [q, k, v] = head_views(qkv, dims, s, head);
            let mut p = self.weights(q, k, s, dims);
            if let Some(mask) = self.keep_mask(index, head, p.len()) {
                p.iter_mut().zip(&mask).for_each(|(w, m)| *w *= m);
            }
            let p = MatRef::rows(&p, s.len, s.keys, s.keys);
            let mut context = MatMut::rows(
                &mut out[head * dims.head_dim..],
                s.len,
                dims.head_dim,
                dims.hidden,
            );
            matmul(&mut context, p, v, 1.0, false);
        }
    }

    /// A segment's gradient with respect to its `qkv` rows, `(len, 3 * hidden)`, into `out` (zeroed),
    /// given the gradient of its context rows.
    fn backward_segment(
        &self,
        qkv: &[f32],
        grad: &[f32],
        dims: Dims,
        index: usize,
        out: &mut [f32],
    ) {
        let s = self.segments[index];
        let width = dims.fused();
        let scale = 1.0 / (dims.head_dim as f32).sqrt();
        let grad_rows = &grad[s.first * dims.hidden..(s.first + s.len) * dims.hidden];
        for head in 0..self.heads {
            let [q, k, v] = head_views(qkv, dims, s, head);
            let d_context = MatRef::rows(
                &grad_rows[head * dims.head_dim..],
                s.len,
                dims.head_dim,
                dims.hidden,
            );
            let p = self.weights(q, k, s, dims);
            let mask = self.keep_mask(index, head, p.len());
            let dropped;
            let p_used = match &mask {
                Some(mask) => {
                    dropped = p.iter().zip(mask).map(|(w, m)| w * m).collect::<Vec<_>>();
                    &dropped
                }
                None => &p,
            };
            let column = |part: usize| part * dims.hidden + head * dims.head_dim;

            // d v = P_used^T d context
            let mut d_v = MatMut::rows(&mut out[column(2)..], s.keys, dims.head_dim, width);
            let p_used = MatRef::rows(p_used, s.len, s.keys, s.keys);
            matmul(&mut d_v, p_used.t(), d_context, 1.0, false);

            // d P = (d context v^T) * mask; then through the softmax:
            // d S = P * (d P - sum_j(d P * P)), scaled as the scores were.
            let mut d_scores = vec![0f32; s.len * s.keys];
            let mut d_p = MatMut::rows(&mut d_scores, s.len, s.keys, s.keys);
            matmul(&mut d_p, d_context, v.t(), 1.0, false);
            if let Some(mask) = &mask {
                d_scores.iter_mut().zip(mask).for_each(|(g, m)| *g *= m);
            }
            for (g, w) in d_scores
                .chunks_exact_mut(s.keys)
                .zip(p.chunks_exact(s.keys))
            {
                let dot: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum();
                g.iter_mut().zip(w).for_each(|(g, &w)| *g = w * (*g - dot));
            }
            let d_scores = MatRef::rows(&d_scores, s.len, s.keys, s.keys);

            // d q = scale d S k;  d k = scale d S^T q
            let mut d_q = MatMut::rows(&mut out[column(0)..], s.len, dims.head_dim, width);
            matmul(&mut d_q, d_scores, k, scale, false);
            let mut d_k = MatMut::rows(&mut out[column(1)..], s.keys, dims.head_dim, width);
            matmul(&mut d_k, d_scores.t(), q, scale, false);
        }
    }
}

impl CustomOp1 for TrainableAttention {
    fn name(&self) -> &'static str {
        "trainable-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows, dims) = self.dims(self.name(), layout)?;
        let qkv = f32_slice(self.name(), storage, layout)?;
        let mut out = vec![0f32; rows * dims.hidden];
        super::segment_blocks(&mut out, &self.segments, dims.hidden)
            .into_par_iter()
            .enumerate()
            .for_each(|(index, block)| self.forward_segment(qkv, dims, index, block));
        Ok((CpuStorage::F32(out), Shape::from((rows, dims.hidden))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = qkv.apply_op2_no_bwd(&grad_res.contiguous()?, &TrainableAttentionGrad(self))?;
        Ok(Some(grad))
    }
}

/// `(qkv, d context)` -> `d qkv`.
struct TrainableAttentionGrad<'a>(&'a TrainableAttention);

impl CustomOp2 for TrainableAttentionGrad<'_> {
    fn name(&self) -> &'static str {
        "trainable-attention-grad"
    }

    fn cpu_fwd(
        &self,
        qkv: &CpuStorage,
        qkv_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.0;
        let (rows, dims) = op.dims(self.name(), qkv_layout)?;
        if grad_layout.shape().dims2()? != (rows, dims.hidden) {
            candle_core::bail!(
                "{}: gradient of shape {:?}",
                self.name(),
                grad_layout.shape()
            )
        }
        let qkv = f32_slice(self.name(), qkv, qkv_layout)?;
        let grad = f32_slice(self.name(), grad, grad_layout)?;
        let mut out = vec![0f32; rows * dims.fused()];
        super::segment_blocks(&mut out, &op.segments, dims.fused())
            .into_par_iter()
            .enumerate()
            .for_each(|(index, block)| op.backward_segment(qkv, grad, dims, index, block));
        Ok((CpuStorage::F32(out), Shape::from((rows, dims.fused()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{DType, Device, Var, D};

    const HEADS: usize = 2;
    const HEAD_DIM: usize = 4;
    const HIDDEN: usize = HEADS * HEAD_DIM;

    fn seg(first: usize, len: usize, keys: usize) -> Segment {
        Segment { first, len, keys }
    }

    /// The same attention from candle's differentiable ops, one segment and head at a time, with
    /// the kernel's own dropout masks.
    fn reference(qkv: &Tensor, op: &TrainableAttention) -> Result<Tensor> {
        let scale = 1.0 / (HEAD_DIM as f64).sqrt();
        let mut blocks = Vec::new();
        for (index, s) in op.segments.iter().enumerate() {
            let rows = qkv.narrow(0, s.first, s.len)?;
            let mut heads = Vec::new();
            for head in 0..HEADS {
                let part = |p: usize, n: usize| {
                    rows.narrow(1, p * HIDDEN + head * HEAD_DIM, HEAD_DIM)?
                        .narrow(0, 0, n)
                };
                let (q, k, v) = (part(0, s.len)?, part(1, s.keys)?, part(2, s.keys)?);
                let scores = (q.matmul(&k.t()?)? * scale)?;
                let mut p = candle_nn::ops::softmax(&scores, D::Minus1)?;
                if let Some(mask) = op.keep_mask(index, head, s.len * s.keys) {
                    p = (p * Tensor::from_vec(mask, (s.len, s.keys), qkv.device())?)?;
                }
                heads.push(p.matmul(&v)?);
            }
            blocks.push(Tensor::cat(&heads, 1)?);
        }
        Tensor::cat(&blocks, 0)
    }

    #[test]
    fn forward_and_gradient_match_candle_ops() -> Result<()> {
        let dev = Device::Cpu;
        // Packed sequences, and right-padded ones whose pads are not attended to.
        let layouts = [
            vec![seg(0, 5, 5), seg(5, 1, 1), seg(6, 3, 3)],
            vec![seg(0, 4, 2), seg(4, 4, 4), seg(8, 4, 1)],
        ];
        for segments in layouts {
            for dropout in [None, Some(DropoutDraw { p: 0.3, seed: 9 })] {
                let rows: usize = segments.iter().map(|s| s.len).sum();
                let qkv = Var::randn(0f32, 1.0, (rows, 3 * HIDDEN), &dev)?;
                let weights = Tensor::randn(0f32, 1.0, (rows, HIDDEN), &dev)?;
                let op = TrainableAttention {
                    segments: segments.clone(),
                    heads: HEADS,
                    dropout,
                };
                let ours = qkv.as_tensor().apply_op1(TrainableAttention {
                    segments: segments.clone(),
                    heads: HEADS,
                    dropout,
                })?;
                let theirs = reference(qkv.as_tensor(), &op)?;
                assert!(max_diff(&ours, &theirs) < 1e-5, "{segments:?} {dropout:?}");

                let grad = |out: &Tensor| -> Result<Tensor> {
                    let loss = (out * &weights)?.sum_all()?;
                    let grads = loss.backward()?;
                    Ok(grads.get(qkv.as_tensor()).expect("a gradient").clone())
                };
                let (g_ours, g_theirs) = (grad(&ours)?, grad(&theirs)?);
                let diff = max_diff(&g_ours, &g_theirs);
                assert!(
                    diff < 1e-4,
                    "{segments:?} {dropout:?}: gradient off by {diff}"
                );
                assert!(g_ours.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
            }
        }
        Ok(())
    }

    #[test]
    fn dropout_masks_follow_the_seed() -> Result<()> {
        let dev = Device::Cpu;
        let segments = vec![seg(0, 6, 6)];
        let qkv = Tensor::randn(0f32, 1.0, (6, 3 * HIDDEN), &dev)?;
        let run = |seed| {
            let dropout = Some(DropoutDraw { p: 0.5, seed });
            let op = TrainableAttention {
                segments: segments.clone(),
                heads: HEADS,
                dropout,
            };
            qkv.apply_op1(op)
        };
        assert_eq!(max_diff(&run(1)?, &run(1)?), 0.0);
        assert!(max_diff(&run(1)?, &run(2)?) > 0.0);
        Ok(())
    }

    #[test]
    fn refuses_rows_that_are_not_query_key_and_value() {
        let qkv = Tensor::zeros((3, 8), DType::F32, &Device::Cpu).unwrap();
        let op = TrainableAttention {
            segments: vec![seg(0, 3, 3)],
            heads: 2,
            dropout: None,
        };
        assert!(qkv.apply_op1(op).is_err());
    }
}
