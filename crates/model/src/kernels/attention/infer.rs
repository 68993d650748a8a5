//! Inference attention: each (sequence, head) one small task in plain loops, which the compiler
//! vectorizes; a title's few rows are too few for a GEMM's packing to pay.
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape};
use rayon::prelude::*;

use crate::kernels::dispatch::f32_slice;
use crate::kernels::math::exp;

use super::Segment;

/// Below this many multiply-adds attention runs on the calling thread: waking a worker costs more
/// than it saves. (One title of 14 tokens is about 150 thousand a layer.)
const PARALLEL_FROM: usize = 1 << 16;

pub(super) struct PackedAttention {
    pub segments: Vec<Segment>,
    pub heads: usize,
}

impl PackedAttention {
    /// One head of one sequence: `(len, head_dim)` context rows, compiled for the widest vectors
    /// this CPU has (the dot products and weighted sums vectorize; the crate is built for baseline
    /// x86-64, whose vectors are 4 floats).
    fn head(&self, qkv: [&[f32]; 3], hidden: usize, sequence: usize, head: usize) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { self.head_avx512(qkv, hidden, sequence, head) };
        }
        self.head_portable(qkv, hidden, sequence, head)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn head_avx512(
        &self,
        qkv: [&[f32]; 3],
        hidden: usize,
        sequence: usize,
        head: usize,
    ) -> Vec<f32> {
        self.head_portable(qkv, hidden, sequence, head)
    }

    #[inline(always)]
    fn head_portable(
        &self,
        [q, k, v]: [&[f32]; 3],
        hidden: usize,
        sequence: usize,
        head: usize,
    ) -> Vec<f32> {
        let Segment { first, len, keys } = self.segments[sequence];
        let head_dim = hidden / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let column = head * head_dim;
        let slice = |m, row| head_slice(m, (first + row) * hidden + column, head_dim);
        // Softmax over the whole (query, key) block at once: a title's rows of 10-20 keys are
        // too short for a vector loop a row at a time, and the exponentials were the costly part
        // (7% of tagging in batches when done per row).
        let mut weights = vec![0f32; len * keys];
        for (i, row) in weights.chunks_exact_mut(keys).enumerate() {
            let query = slice(q, i);
            for (j, w) in row.iter_mut().enumerate() {
                *w = dot(query, slice(k, j)) * scale;
            }
            let largest = row.iter().fold(f32::NEG_INFINITY, |m, &w| m.max(w));
            row.iter_mut().for_each(|w| *w -= largest);
        }
        weights.iter_mut().for_each(|w| *w = exp(*w));
        let mut context = vec![0f32; len * head_dim];
        for (out, row) in context
            .chunks_exact_mut(head_dim)
            .zip(weights.chunks_exact(keys))
        {
            let inverse = 1.0 / row.iter().sum::<f32>();
            for (j, &w) in row.iter().enumerate() {
                let p = w * inverse;
                out.iter_mut()
                    .zip(slice(v, j))
                    .for_each(|(o, &x)| *o += p * x);
            }
        }
        context
    }
}

fn head_slice(m: &[f32], at: usize, len: usize) -> &[f32] {
    &m[at..at + len]
}

/// In eight independent lanes, which the compiler vectorizes (a single running sum would have to
/// add in order).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in a_chunks.zip(b_chunks) {
        for l in 0..8 {
            lanes[l] += ca[l] * cb[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

impl CustomOp3 for PackedAttention {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        q_layout: &Layout,
        k: &CpuStorage,
        k_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, hidden) = q_layout.shape().dims2()?;
        if k_layout.shape() != q_layout.shape() || v_layout.shape() != q_layout.shape() {
            candle_core::bail!("packed-attention: q, k and v differ in shape")
        }
        let head_dim =
            super::validate("packed-attention", &self.segments, rows, hidden, self.heads)?;
        let q = f32_slice("packed-attention", q, q_layout)?;
        let k = f32_slice("packed-attention", k, k_layout)?;
        let v = f32_slice("packed-attention", v, v_layout)?;
        let tasks = self.segments.len() * self.heads;
        let run = |task: usize| self.head([q, k, v], hidden, task / self.heads, task % self.heads);
        let work: usize = self.segments.iter().map(|s| s.len * s.keys).sum::<usize>() * hidden * 2;
        let blocks: Vec<Vec<f32>> = if work < PARALLEL_FROM {
            (0..tasks).map(run).collect()
        } else {
            (0..tasks).into_par_iter().map(run).collect()
        };
        let mut out = vec![0f32; rows * hidden];
        for (task, block) in blocks.iter().enumerate() {
            let first = self.segments[task / self.heads].first;
            let column = (task % self.heads) * head_dim;
            for (i, row) in block.chunks_exact(head_dim).enumerate() {
                let at = (first + i) * hidden + column;
                out[at..at + head_dim].copy_from_slice(row);
            }
        }
        Ok((CpuStorage::F32(out), q_layout.shape().clone()))
    }
}
