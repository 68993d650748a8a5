//! The browser's int8 kernel where WebAssembly relaxed SIMD compiles (Chromium since 114):
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s` multiplies 16 signed weight bytes by 16 input bytes of
//! 0..=127 and adds them in fours into 4 i32 sums, in one instruction (V8 lowers it to AVX-VNNI's
//! `vpdpbusd`, or to AVX2's `vpmaddubsw` + `vpmaddwd`). That is twice the inputs per instruction
//! of `i32x4.dot_i16x8_s`, and a quarter of the bytes streamed per weight.
//!
//! Inputs are rounded per row to 7 bits with a zero point, as the native AVX2 kernel does:
//! `x ~ scale * (q - zero)`, so `sum_k x_k w_k ~ scale * (sum_k q_k w_k - zero * sum_k w_k)` with
//! each weight row's sum kept from load. The instruction's result is fully specified only for
//! inputs below 128 (a set top bit may be read as signed or unsigned), hence 7 bits, not 8. Its
//! pairwise i16 sums on AVX2 cannot saturate: two products of at most 127 * 127 stay below 2^15.
//! Rounding activations to 7 bits cost nothing measurable on the gold set natively (AVX2 kernel:
//! test F1 96.93 against 96.90 with 8 bits).
//!
//! The weights stay row-major (two input rows by four weight rows at a time, as the portable
//! kernel): a WASM engine offers no wider vectors to pack for. Each input row's four sums leave
//! the loop as one vector (two rounds of shuffles and adds) and are scaled and stored four
//! outputs at a time: lane by lane, the sums and stores had cost a fifth of a 384-wide product.
//! Built for other targets the same sums are taken one product at a time, so native tests check
//! the layout and the arithmetic (`MULTITAG_INT8_KERNEL=relaxed`); the SIMD loop itself is checked
//! in the browser tests.
use super::{round_unsigned, Activation, ROW_BLOCK};

/// The largest rounded input: the instruction's 7-bit operand.
const INPUT_MAX: u8 = 127;

/// `(out, in)` int8 weights, row-major, with each row's sum.
#[derive(Clone, Debug)]
pub struct RelaxedWeights {
    out_dim: usize,
    in_dim: usize,
    weights: Vec<i8>,
    row_sums: Vec<i32>,
}

impl RelaxedWeights {
    /// `weights`: `(out, in)` row-major values in -127..=127.
    pub fn new(weights: &[i16], out_dim: usize, in_dim: usize) -> Self {
        Self {
            out_dim,
            in_dim,
            weights: weights.iter().map(|&w| w as i8).collect(),
            row_sums: weights
                .chunks_exact(in_dim)
                .map(|row| row.iter().map(|&w| w as i32).sum())
                .collect(),
        }
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
        let (k, n) = (self.in_dim, self.out_dim);
        let mut quantized = vec![0u8; rows * k];
        let mut rounding = Vec::with_capacity(rows);
        for (row, dst) in x.chunks_exact(k).zip(quantized.chunks_exact_mut(k)) {
            rounding.push(round_unsigned(row, dst, INPUT_MAX));
        }
        let x_row = |r: usize| &quantized[r * k..(r + 1) * k];
        let w_row = |j: usize| &self.weights[j * k..(j + 1) * k];
        let mut out = vec![0f32; rows * n];
        // Blocks of input rows stay in cache while every weight row passes them once.
        for first in (0..rows).step_by(ROW_BLOCK) {
            let last = (first + ROW_BLOCK).min(rows);
            let mut j = 0;
            while j + 4 <= n {
                let w = [w_row(j), w_row(j + 1), w_row(j + 2), w_row(j + 3)];
                let columns = Columns {
                    row_sums: first_four(&self.row_sums[j..]),
                    scales: first_four(&weight_scales[j..]),
                    bias: first_four(&bias[j..]),
                };
                let mut store = |r: usize, dots: Sums| {
                    columns.store(dots, rounding[r], &mut out[r * n + j..r * n + j + 4]);
                };
                let mut r = first;
                while r + 2 <= last {
                    let [a, b] = dot_rows([x_row(r), x_row(r + 1)], w);
                    store(r, a);
                    store(r + 1, b);
                    r += 2;
                }
                if r < last {
                    store(r, dot_rows([x_row(r)], w)[0]);
                }
                j += 4;
            }
            for j in j..n {
                for r in first..last {
                    let dot = dot(x_row(r), w_row(j));
                    let column = (self.row_sums[j], weight_scales[j], bias[j]);
                    out[r * n + j] = output(dot, rounding[r], column);
                }
            }
        }
        if activation == Activation::GeluErf {
            crate::kernels::activations::gelu_erf_in_place(&mut out);
        }
        out
    }
}

/// One input row against one weight row. No i32 can overflow: rows are at most
/// [`super::MAX_INNER`] long, and 4,096 products of at most 127 * 127 sum below 2^27.
fn dot(x: &[u8], w: &[i8]) -> i32 {
    x.iter().zip(w).map(|(&a, &b)| a as i32 * b as i32).sum()
}

fn first_four<T: Copy>(values: &[T]) -> [T; 4] {
    [values[0], values[1], values[2], values[3]]
}

/// What four consecutive outputs need to turn their integer sums into floats.
struct Columns {
    row_sums: [i32; 4],
    scales: [f32; 4],
    bias: [f32; 4],
}

/// One output from its integer sum: `(dot - zero * row_sum) * scale * weight_scale + bias`, for
/// the input row's `(scale, zero)` and the column's `(row_sum, weight_scale, bias)`.
#[inline(always)]
fn output(
    dot: i32,
    (scale, zero): (f32, i32),
    (row_sum, weight_scale, bias): (i32, f32, f32),
) -> f32 {
    (dot - zero * row_sum) as f32 * scale * weight_scale + bias
}

/// One input row's sums against four weight rows.
#[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
type Sums = [i32; 4];

#[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
impl Columns {
    /// [`output`] for the four outputs.
    fn store(&self, dots: Sums, rounding: (f32, i32), out: &mut [f32]) {
        for c in 0..4 {
            let column = (self.row_sums[c], self.scales[c], self.bias[c]);
            out[c] = output(dots[c], rounding, column);
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
fn dot_rows<const R: usize>(x: [&[u8]; R], w: [&[i8]; 4]) -> [Sums; R] {
    x.map(|x| w.map(|w| dot(x, w)))
}

/// One input row's sums against four weight rows, as one vector.
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
type Sums = core::arch::wasm32::v128;

#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
impl Columns {
    /// [`output`]'s arithmetic, in the same order, four lanes at once: the outputs are equal to
    /// the bit.
    #[inline(always)]
    fn store(&self, dots: Sums, (scale, zero): (f32, i32), out: &mut [f32]) {
        use core::arch::wasm32::*;
        let out = &mut out[..4];
        // SAFETY: the arrays are 16 bytes; `out` holds 4 floats; unaligned access is allowed.
        unsafe {
            let row_sums = v128_load(self.row_sums.as_ptr() as *const v128);
            let centred = i32x4_sub(dots, i32x4_mul(i32x4_splat(zero), row_sums));
            let scaled = f32x4_mul(f32x4_convert_i32x4(centred), f32x4_splat(scale));
            let scales = v128_load(self.scales.as_ptr() as *const v128);
            let bias = v128_load(self.bias.as_ptr() as *const v128);
            v128_store(
                out.as_mut_ptr() as *mut v128,
                f32x4_add(f32x4_mul(scaled, scales), bias),
            );
        }
    }
}

/// `R` input rows against 4 weight rows (all of one length): `R * 4` i32x4 accumulators, one
/// relaxed dot product per pair and 16 bytes; each row's four accumulators then summed across
/// their lanes into one vector by two rounds of shuffles and adds.
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
#[inline(always)]
fn dot_rows<const R: usize>(x: [&[u8]; R], w: [&[i8]; 4]) -> [Sums; R] {
    use core::arch::wasm32::*;
    let k = x[0].len();
    let full = k - k % 16;
    let mut acc = [[i32x4_splat(0); 4]; R];
    let mut i = 0;
    while i < full {
        // SAFETY: i + 16 <= full <= k, the length of every slice; v128_load accepts unaligned
        // addresses.
        unsafe {
            let xv: [v128; R] =
                core::array::from_fn(|r| v128_load(x[r].as_ptr().add(i) as *const v128));
            for c in 0..4 {
                let wv = v128_load(w[c].as_ptr().add(i) as *const v128);
                for r in 0..R {
                    // The weights are the signed operand, the 7-bit inputs the other.
                    acc[r][c] = i32x4_relaxed_dot_i8x16_i7x16_add(wv, xv[r], acc[r][c]);
                }
            }
        }
        i += 16;
    }
    core::array::from_fn(|r| {
        let [a, b, c, d] = acc[r];
        // [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d; then [a, b, c, d] summed.
        let ab = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(a, b),
            i32x4_shuffle::<2, 6, 3, 7>(a, b),
        );
        let cd = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(c, d),
            i32x4_shuffle::<2, 6, 3, 7>(c, d),
        );
        let sums = i32x4_add(
            i32x4_shuffle::<0, 1, 4, 5>(ab, cd),
            i32x4_shuffle::<2, 3, 6, 7>(ab, cd),
        );
        if full == k {
            sums
        } else {
            let tail: [i32; 4] = core::array::from_fn(|c| dot(&x[r][full..], &w[c][full..]));
            i32x4_add(sums, i32x4(tail[0], tail[1], tail[2], tail[3]))
        }
    })
}
