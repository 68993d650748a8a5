//! The int8 kernel wherever no faster one runs, WebAssembly SIMD128 included: each input row
//! rounded to 14-bit integers (one scale a row, [`super::round::round_symmetric`]), the weights
//! kept widened to i16, so the products are exact integer dot products whose inner loop is
//! nothing but loads, `i32x4.dot_i16x8_s` and adds (see the parent module for why).
use super::{round, Activation, INPUT_MAX, ROW_BLOCK};

/// `(out, in)` weights as i16 values in -127..=127, row-major.
#[derive(Clone, Debug)]
pub struct PortableWeights {
    out_dim: usize,
    in_dim: usize,
    weights: Vec<i16>,
}

impl PortableWeights {
    pub fn new(weights: Vec<i16>, out_dim: usize, in_dim: usize) -> Self {
        Self {
            out_dim,
            in_dim,
            weights,
        }
    }

    /// The weights, row-major (what the other kernels are built from).
    pub fn weights(&self) -> &[i16] {
        &self.weights
    }

    /// `x`: `(rows, in)` f32, row-major. Returns `(rows, out)`: the products scaled by the inputs'
    /// scales and `weight_scales`, plus `bias`, then `activation`.
    pub fn matmul(
        &self,
        x: &[f32],
        rows: usize,
        weight_scales: &[f32],
        bias: &[f32],
        activation: Activation,
    ) -> Vec<f32> {
        let k = self.in_dim;
        let mut quantized = vec![0i16; x.len()];
        let mut x_scales = Vec::with_capacity(rows);
        for (x_row, q_row) in x.chunks_exact(k).zip(quantized.chunks_exact_mut(k)) {
            x_scales.push(round::round_symmetric(x_row, q_row, INPUT_MAX));
        }
        let inputs = Inputs {
            x: &quantized,
            x_scales: &x_scales,
            weight_scales,
            bias,
        };
        let mut out = vec![0f32; rows * self.out_dim];
        for first in (0..rows).step_by(ROW_BLOCK) {
            let last = (first + ROW_BLOCK).min(rows);
            self.rows_times_weights(&inputs, first..last, &mut out);
        }
        if activation == Activation::GeluErf {
            crate::kernels::activations::gelu_erf_in_place(&mut out);
        }
        out
    }

    /// Quantized input rows `rows` against every weight row: two input rows by four weight rows
    /// at a time, so each load feeds several dot products.
    fn rows_times_weights(&self, inputs: &Inputs, rows: std::ops::Range<usize>, out: &mut [f32]) {
        let (k, n, weights) = (self.in_dim, self.out_dim, &self.weights);
        let Inputs {
            x,
            x_scales,
            weight_scales,
            bias,
        } = inputs;
        let x_row = |r: usize| &x[r * k..(r + 1) * k];
        let mut store = |r: usize, j: usize, sum: i64| {
            out[r * n + j] = sum as f32 * x_scales[r] * weight_scales[j] + bias[j];
        };
        let mut j = 0;
        while j + 4 <= n {
            let w = &weights[j * k..(j + 4) * k];
            let w = [&w[..k], &w[k..2 * k], &w[2 * k..3 * k], &w[3 * k..]];
            let mut r = rows.start;
            while r + 2 <= rows.end {
                let [first, second] = dot2x4(x_row(r), x_row(r + 1), w);
                for (t, (a, b)) in first.into_iter().zip(second).enumerate() {
                    store(r, j + t, a);
                    store(r + 1, j + t, b);
                }
                r += 2;
            }
            if r < rows.end {
                for (t, sum) in dot4(x_row(r), w).into_iter().enumerate() {
                    store(r, j + t, sum);
                }
            }
            j += 4;
        }
        for j in j..n {
            for r in rows.clone() {
                store(r, j, dot(x_row(r), &weights[j * k..(j + 1) * k]));
            }
        }
    }
}

/// The rounded input rows of one call and what scales their products.
struct Inputs<'a> {
    x: &'a [i16],
    x_scales: &'a [f32],
    weight_scales: &'a [f32],
    bias: &'a [f32],
}

/// Eight i32 lanes (which the compiler vectorizes), each summing `k / 8` products, totalled in
/// i64: a whole row's sum can pass 2^31 even where each lane's share does not.
fn dot(x: &[i16], w: &[i16]) -> i64 {
    let mut lanes = [0i32; 8];
    let mut xs = x.chunks_exact(8);
    let mut ws = w.chunks_exact(8);
    for (xc, wc) in (&mut xs).zip(&mut ws) {
        for l in 0..8 {
            lanes[l] += xc[l] as i32 * wc[l] as i32;
        }
    }
    let tail: i64 = xs
        .remainder()
        .iter()
        .zip(ws.remainder())
        .map(|(&a, &b)| (a as i32 * b as i32) as i64)
        .sum();
    lanes.iter().map(|&v| v as i64).sum::<i64>() + tail
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn dot4(x: &[i16], w: [&[i16]; 4]) -> [i64; 4] {
    w.map(|w| dot(x, w))
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn dot2x4(x0: &[i16], x1: &[i16], w: [&[i16]; 4]) -> [[i64; 4]; 2] {
    [dot4(x0, w), dot4(x1, w)]
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn dot4(x: &[i16], w: [&[i16]; 4]) -> [i64; 4] {
    dot_rows([x], w)[0]
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn dot2x4(x0: &[i16], x1: &[i16], w: [&[i16]; 4]) -> [[i64; 4]; 2] {
    dot_rows([x0, x1], w)
}

/// `R` input rows against 4 weight rows (all of one length): `R * 4` i32x4 accumulators, one
/// `i32x4.dot_i16x8_s` per pair and 8 elements.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn dot_rows<const R: usize>(x: [&[i16]; R], w: [&[i16]; 4]) -> [[i64; 4]; R] {
    use core::arch::wasm32::*;
    let k = x[0].len();
    let full = k - k % 8;
    let mut acc = [[i32x4_splat(0); 4]; R];
    let mut i = 0;
    while i < full {
        // SAFETY: i + 8 <= full <= k, the length of every slice; v128_load accepts unaligned
        // addresses.
        unsafe {
            let xv: [v128; R] =
                core::array::from_fn(|r| v128_load(x[r].as_ptr().add(i) as *const v128));
            for c in 0..4 {
                let wv = v128_load(w[c].as_ptr().add(i) as *const v128);
                for r in 0..R {
                    acc[r][c] = i32x4_add(acc[r][c], i32x4_dot_i16x8(xv[r], wv));
                }
            }
        }
        i += 8;
    }
    let lanes = |v: v128| {
        i32x4_extract_lane::<0>(v) as i64
            + i32x4_extract_lane::<1>(v) as i64
            + i32x4_extract_lane::<2>(v) as i64
            + i32x4_extract_lane::<3>(v) as i64
    };
    core::array::from_fn(|r| {
        core::array::from_fn(|c| lanes(acc[r][c]) + dot(&x[r][full..], &w[c][full..]))
    })
}
