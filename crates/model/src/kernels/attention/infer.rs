//! Inference attention: each (sequence, head) one small task in plain loops, which the compiler
//! vectorizes; a title's few rows are too few for a GEMM's packing to pay.
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
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
    /// x86-64, whose vectors are 4 floats). `qkv` rows are `3 * hidden` long.
    fn head(&self, qkv: &[f32], hidden: usize, sequence: usize, head: usize) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { self.head_avx512(qkv, hidden, sequence, head) };
        }
        self.head_portable(qkv, hidden, sequence, head)
    }

    /// [`Self::head`] in AVX-512 intrinsics where the head width is a multiple of 16: each
    /// context row is summed in registers with fused multiply-adds and scaled once at the end,
    /// and each score row's largest value and sum are taken 16 lanes at a time. (Written as plain
    /// loops, a 32-wide head's weighted sums compiled to 8-lane multiplies and adds through
    /// memory, and the largest score to a scalar loop: attention was 9-11% of tagging one title
    /// at a time.)
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn head_avx512(
        &self,
        qkv: &[f32],
        hidden: usize,
        sequence: usize,
        head: usize,
    ) -> Vec<f32> {
        let head_dim = hidden / self.heads;
        if !head_dim.is_multiple_of(16) {
            return self.head_portable(qkv, hidden, sequence, head);
        }
        let Segment { first, len, keys } = self.segments[sequence];
        let stride = 3 * hidden;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let query = first * stride + head * head_dim;
        let (key, value) = (query + hidden, query + 2 * hidden);
        let mut weights = vec![0f32; len * keys];
        for (i, row) in weights.chunks_exact_mut(keys).enumerate() {
            let q = &qkv[query + i * stride..][..head_dim];
            // SAFETY: the CPU has AVX-512F; `validate` checked that the segment's rows exist.
            unsafe { scores_avx512(q, &qkv[key..], stride, scale, row) };
        }
        // A second pass: reading a row in whole vectors right after its scores were stored four
        // at a time stalled on the stores (13% of this function's time).
        for row in weights.chunks_exact_mut(keys) {
            // SAFETY: the CPU has AVX-512F.
            let largest = unsafe { x86::row_max(row) };
            row.iter_mut().for_each(|w| *w -= largest);
        }
        weights.iter_mut().for_each(|w| *w = exp(*w));
        let mut context = vec![0f32; len * head_dim];
        let values = &qkv[value..];
        for (out, row) in context
            .chunks_exact_mut(head_dim)
            .zip(weights.chunks_exact(keys))
        {
            // SAFETY (both): the CPU has AVX-512F; each key's values are `head_dim` long inside
            // `values` (the segment's rows exist) and `out` is `head_dim` long.
            let inverse = 1.0 / unsafe { x86::row_sum(row) };
            for c in (0..head_dim).step_by(64) {
                let out = &mut out[c..(c + 64).min(head_dim)];
                unsafe {
                    match out.len() / 16 {
                        4 => x86::weighted_sum::<4>(row, &values[c..], stride, inverse, out),
                        3 => x86::weighted_sum::<3>(row, &values[c..], stride, inverse, out),
                        2 => x86::weighted_sum::<2>(row, &values[c..], stride, inverse, out),
                        _ => x86::weighted_sum::<1>(row, &values[c..], stride, inverse, out),
                    }
                }
            }
        }
        context
    }

    /// [`Self::head`] in plain loops, which the compiler vectorizes for the caller's target
    /// features (inlined into [`Self::head_avx512`] for head widths it does not take).
    #[inline(always)]
    pub(super) fn head_portable(
        &self,
        qkv: &[f32],
        hidden: usize,
        sequence: usize,
        head: usize,
    ) -> Vec<f32> {
        let Segment { first, len, keys } = self.segments[sequence];
        let head_dim = hidden / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let column = head * head_dim;
        // Part 0, 1 or 2 (query, key, value) of row `row`: this head's columns.
        let slice = |part: usize, row| {
            head_slice(
                qkv,
                (first + row) * 3 * hidden + part * hidden + column,
                head_dim,
            )
        };
        let (q, v) = (0, 2);
        // Softmax over the whole (query, key) block at once: a title's rows of 10-20 keys are
        // too short for a vector loop a row at a time, and the exponentials were the costly part
        // (7% of tagging in batches when done per row).
        let mut weights = vec![0f32; len * keys];
        // Key j's head columns start at `first_key + j * 3 * hidden`.
        let first_key = first * 3 * hidden + hidden + column;
        for (i, row) in weights.chunks_exact_mut(keys).enumerate() {
            scores(slice(q, i), &qkv[first_key..], 3 * hidden, scale, row);
            let largest = row.iter().fold(f32::NEG_INFINITY, |m, &w| m.max(w));
            row.iter_mut().for_each(|w| *w -= largest);
        }
        weights.iter_mut().for_each(|w| *w = exp(*w));
        let mut context = vec![0f32; len * head_dim];
        for (out, row) in context
            .chunks_exact_mut(head_dim)
            .zip(weights.chunks_exact(keys))
        {
            // Summing 16 columns over all keys in an array (to keep them in registers, as the
            // AVX-512 path does) made the WebAssembly workers about 8% slower in batches.
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

/// `row[j] = scale * (query . key j)`, key `j` at `keys[j * stride..][..query.len()]`.
#[inline(always)]
fn scores(query: &[f32], keys: &[f32], stride: usize, scale: f32, row: &mut [f32]) {
    for (j, w) in row.iter_mut().enumerate() {
        *w = dot(query, &keys[j * stride..][..query.len()]) * scale;
    }
}

/// [`scores`] with AVX-512: four keys at a time, their 16-lane partial sums reduced together (a
/// dot product per key spent more on its own reduction than on its multiply-adds).
/// `query.len()` is a multiple of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scores_avx512(query: &[f32], keys: &[f32], stride: usize, scale: f32, row: &mut [f32]) {
    use std::arch::x86_64::*;
    let d = query.len();
    debug_assert!(
        d.is_multiple_of(16) && (row.is_empty() || keys.len() >= (row.len() - 1) * stride + d)
    );
    // Each zmm of partial sums to 8 lanes, then two horizontal adds leave four sums per 128-bit
    // half, and the halves are added.
    let halves = |v: __m512| {
        _mm256_add_ps(
            _mm512_castps512_ps256(v),
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)),
        )
    };
    let mut j = 0;
    let n = row.len();
    // SAFETY (all loads): key j's d values start at j * stride, inside `keys` (checked above);
    // the query's d values are inside `query`.
    while j + 4 <= n {
        let mut acc = [_mm512_setzero_ps(); 4];
        for c in (0..d).step_by(16) {
            let qv = unsafe { _mm512_loadu_ps(query.as_ptr().add(c)) };
            for (t, a) in acc.iter_mut().enumerate() {
                let kv = unsafe { _mm512_loadu_ps(keys.as_ptr().add((j + t) * stride + c)) };
                *a = _mm512_fmadd_ps(qv, kv, *a);
            }
        }
        let pairs = _mm256_hadd_ps(
            _mm256_hadd_ps(halves(acc[0]), halves(acc[1])),
            _mm256_hadd_ps(halves(acc[2]), halves(acc[3])),
        );
        let sums = _mm_add_ps(
            _mm256_castps256_ps128(pairs),
            _mm256_extractf128_ps(pairs, 1),
        );
        unsafe {
            _mm_storeu_ps(
                row.as_mut_ptr().add(j),
                _mm_mul_ps(sums, _mm_set1_ps(scale)),
            )
        };
        j += 4;
    }
    for (t, w) in row[j..].iter_mut().enumerate() {
        let mut acc = _mm512_setzero_ps();
        for c in (0..d).step_by(16) {
            let (qv, kv) = unsafe {
                (
                    _mm512_loadu_ps(query.as_ptr().add(c)),
                    _mm512_loadu_ps(keys.as_ptr().add((j + t) * stride + c)),
                )
            };
            acc = _mm512_fmadd_ps(qv, kv, acc);
        }
        *w = _mm512_reduce_add_ps(acc) * scale;
    }
}

/// The AVX-512 pieces of [`PackedAttention::head_avx512`].
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Lanes `0..len` of a 16-lane mask.
    fn first(len: usize) -> __mmask16 {
        ((1u32 << len.min(16)) - 1) as __mmask16
    }

    /// The largest of `row` (negative infinity when empty).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row_max(row: &[f32]) -> f32 {
        let mut top = _mm512_set1_ps(f32::NEG_INFINITY);
        for chunk in row.chunks(16) {
            // SAFETY: the mask covers the chunk's elements only.
            let v = unsafe { _mm512_mask_loadu_ps(top, first(chunk.len()), chunk.as_ptr()) };
            top = _mm512_max_ps(top, v);
        }
        _mm512_reduce_max_ps(top)
    }

    /// The sum of `row`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row_sum(row: &[f32]) -> f32 {
        let mut sum = _mm512_setzero_ps();
        for chunk in row.chunks(16) {
            // SAFETY: the mask covers the chunk's elements only.
            let v = unsafe { _mm512_maskz_loadu_ps(first(chunk.len()), chunk.as_ptr()) };
            sum = _mm512_add_ps(sum, v);
        }
        _mm512_reduce_add_ps(sum)
    }

    /// `out = scale * sum_j weights[j] * values[j * stride..][..16 * W]`, the `W` vectors of sums
    /// kept in registers over all keys. `out` is `16 * W` long; every key's values are inside
    /// `values`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weighted_sum<const W: usize>(
        weights: &[f32],
        values: &[f32],
        stride: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        assert_eq!(out.len(), 16 * W);
        let mut acc = [_mm512_setzero_ps(); W];
        for (j, &w) in weights.iter().enumerate() {
            let v = &values[j * stride..][..16 * W];
            let w = _mm512_set1_ps(w);
            for (t, a) in acc.iter_mut().enumerate() {
                // SAFETY: `v` holds 16 * W values.
                *a = _mm512_fmadd_ps(w, unsafe { _mm512_loadu_ps(v.as_ptr().add(16 * t)) }, *a);
            }
        }
        for (t, a) in acc.iter().enumerate() {
            // SAFETY: `out` holds 16 * W values.
            unsafe {
                _mm512_storeu_ps(
                    out.as_mut_ptr().add(16 * t),
                    _mm512_mul_ps(*a, _mm512_set1_ps(scale)),
                )
            };
        }
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

impl CustomOp1 for PackedAttention {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(&self, qkv: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows, width) = layout.shape().dims2()?;
        if !width.is_multiple_of(3) {
            candle_core::bail!("packed-attention: rows of {width} are not query, key and value")
        }
        let hidden = width / 3;
        let head_dim =
            super::validate("packed-attention", &self.segments, rows, hidden, self.heads)?;
        let qkv = f32_slice("packed-attention", qkv, layout)?;
        let run = |task: usize| self.head(qkv, hidden, task / self.heads, task % self.heads);
        let tasks = self.segments.len() * self.heads;
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
        Ok((CpuStorage::F32(out), Shape::from((rows, hidden))))
    }
}
