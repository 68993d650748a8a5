//! The x86-64 kernel behind [`crate::int8::Int8Matrix`] on CPUs with AVX-512 VNNI: unsigned 8-bit
//! inputs times signed 8-bit weights with `vpdpbusd`, 64 multiply-adds per instruction where the
//! f32 GEMM's fused multiply-add does 16.
//!
//! Inputs are rounded per row to 8 bits with a zero point (as onnxruntime's dynamic quantization
//! does per tensor): `x ~ scale * (q - zero)` with `q` in 0..=255, the range widened to hold 0.
//! Then `sum_k x_k w_k ~ scale * (sum_k q_k w_k - zero * sum_k w_k)`, and the weights' column sums
//! are kept from load.
//!
//! Weights are packed in blocks of 16 output columns: for each group of 4 consecutive inputs, one
//! 64-byte vector holds those 4 weights of each of the 16 columns. One input row's group, broadcast
//! to all 16 lanes, then feeds 16 columns' sums in one instruction, so the sums never need adding
//! across lanes. No sum can overflow for the rows `Int8Matrix` allows (up to 4,096): each i32 lane
//! adds `k / 4` sums of four products of at most 255 * 127.
use std::arch::x86_64::*;

use rayon::prelude::*;

/// Output columns in one vector of i32 sums.
const BLOCK: usize = crate::int8::OUTPUT_BLOCK;
/// Inputs per byte group of `vpdpbusd`.
const GROUP: usize = 4;
/// Column blocks per parallel task: 64 columns, whose weights (up to 96 KB for rows of 1,536)
/// stay in L2 while every input row passes them.
const BLOCKS_PER_TASK: usize = 4;
/// Below this many multiply-adds a matmul runs on the calling thread, where waking a worker would
/// cost more than it saves (the classifier). A 14-token title's smallest layers, 384 x 384, are
/// about 2 million, and one at a time tags about 30% faster with them split over two cores.
const PARALLEL_FROM: usize = 1 << 20;

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
}

/// `(out, in)` int8 weights laid out for the kernel.
#[derive(Clone, Debug)]
pub struct PackedWeights {
    out_dim: usize,
    in_dim: usize,
    /// Groups of [`GROUP`] inputs: `in_dim` rounded up.
    groups: usize,
    /// Blocks of [`BLOCK`] columns: `out_dim` rounded up.
    blocks: usize,
    /// `[block][group][column in block][input in group]`, zero past `in_dim` and `out_dim`.
    weights: Vec<i8>,
    /// Sum of each column's weights, for the inputs' zero points (padded to whole blocks).
    column_sums: Vec<i32>,
}

impl PackedWeights {
    /// `weights`: `(out, in)` row-major values in -127..=127.
    pub fn new(weights: &[i16], out_dim: usize, in_dim: usize) -> Self {
        let groups = in_dim.div_ceil(GROUP);
        let blocks = out_dim.div_ceil(BLOCK);
        let mut packed = vec![0i8; blocks * groups * BLOCK * GROUP];
        let mut column_sums = vec![0i32; blocks * BLOCK];
        for (n, row) in weights.chunks_exact(in_dim).enumerate() {
            let (block, lane) = (n / BLOCK, n % BLOCK);
            for (k, &w) in row.iter().enumerate() {
                let (group, slot) = (k / GROUP, k % GROUP);
                packed[((block * groups + group) * BLOCK + lane) * GROUP + slot] = w as i8;
            }
            column_sums[n] = row.iter().map(|&w| w as i32).sum();
        }
        Self {
            out_dim,
            in_dim,
            groups,
            blocks,
            weights: packed,
            column_sums,
        }
    }

    /// `x`: `(rows, in)` f32, row-major. Returns `(rows, out)`: the products scaled by the inputs'
    /// scales and `weight_scales`, plus `bias`: one per output column, padded to whole blocks.
    pub fn matmul(&self, x: &[f32], rows: usize, weight_scales: &[f32], bias: &[f32]) -> Vec<f32> {
        let padded = self.blocks * BLOCK;
        assert!(
            weight_scales.len() >= padded && bias.len() >= padded,
            "int8: scales and bias must be padded to {padded} columns"
        );
        let inputs = QuantizedRows::new(x, rows, self.in_dim, self.groups * GROUP);
        let columns = Columns {
            scales: weight_scales,
            bias,
        };
        let mut out = vec![0f32; rows * self.out_dim];
        let target = OutputRows {
            ptr: out.as_mut_ptr(),
            stride: self.out_dim,
        };
        let blocks = |first: usize, last: usize| {
            // SAFETY: `available()` was checked before these weights were packed (see
            // `Int8Matrix::quantize`), and each task writes only its own columns.
            unsafe { self.blocks(&inputs, first..last, &columns, target) }
        };
        if rows * self.out_dim * self.in_dim < PARALLEL_FROM {
            blocks(0, self.blocks);
        } else {
            (0..self.blocks.div_ceil(BLOCKS_PER_TASK))
                .into_par_iter()
                .for_each(|task| {
                    let first = task * BLOCKS_PER_TASK;
                    blocks(first, (first + BLOCKS_PER_TASK).min(self.blocks));
                });
        }
        out
    }

    /// Every input row against the column blocks `blocks`: tiles of up to four rows by up to four
    /// blocks (16 accumulators).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn blocks(
        &self,
        x: &QuantizedRows,
        blocks: std::ops::Range<usize>,
        columns: &Columns,
        out: OutputRows,
    ) {
        let mut b = blocks.start;
        while b < blocks.end {
            let width = (blocks.end - b).min(4);
            let mut r = 0;
            while r < x.rows {
                let height = (x.rows - r).min(4);
                // SAFETY: the tile lies inside the inputs and the weights.
                unsafe {
                    // Every row count gets its own tile, so the last rows of a title (14 rows
                    // are 4 + 4 + 4 + 2) still share each weight load.
                    match (height, width) {
                        (4, 4) => self.tile::<4, 4>(x, r, b, columns, out),
                        (3, 4) => self.tile::<3, 4>(x, r, b, columns, out),
                        (2, 4) => self.tile::<2, 4>(x, r, b, columns, out),
                        (1, 4) => self.tile::<1, 4>(x, r, b, columns, out),
                        (4, w) => (0..w).for_each(|c| self.tile::<4, 1>(x, r, b + c, columns, out)),
                        (h, w) => (0..h).for_each(|i| {
                            (0..w).for_each(|c| self.tile::<1, 1>(x, r + i, b + c, columns, out))
                        }),
                    }
                }
                r += height;
            }
            b += width;
        }
    }

    /// Input rows `r..r + R` against column blocks `b..b + C`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn tile<const R: usize, const C: usize>(
        &self,
        x: &QuantizedRows,
        r: usize,
        b: usize,
        columns: &Columns,
        out: OutputRows,
    ) {
        let block_bytes = self.groups * BLOCK * GROUP;
        let mut acc = [[_mm512_setzero_si512(); C]; R];
        let x_rows: [*const u8; R] = std::array::from_fn(|i| x.row(r + i).as_ptr());
        let w_blocks: [*const i8; C] =
            std::array::from_fn(|c| self.weights[(b + c) * block_bytes..].as_ptr());
        for g in 0..self.groups {
            // SAFETY: group g lies inside every input row (padded to whole groups) and every
            // block; loads may be unaligned.
            unsafe {
                let wv: [__m512i; C] = std::array::from_fn(|c| {
                    _mm512_loadu_si512(w_blocks[c].add(g * BLOCK * GROUP).cast())
                });
                for (row_acc, x_row) in acc.iter_mut().zip(x_rows) {
                    let xv = _mm512_set1_epi32(x_row.add(g * GROUP).cast::<i32>().read_unaligned());
                    for (a, &w) in row_acc.iter_mut().zip(&wv) {
                        *a = _mm512_dpbusd_epi32(*a, xv, w);
                    }
                }
            }
        }
        // Per column block: which lanes are real columns, their weight sums, scales and biases.
        let blocks: [(__mmask16, __m512i, __m512, __m512, usize); C] = std::array::from_fn(|c| {
            let first = (b + c) * BLOCK;
            let real = (self.out_dim - first).min(BLOCK);
            // SAFETY: the sums, scales and biases are padded to whole blocks.
            unsafe {
                (
                    ((1u32 << real) - 1) as __mmask16,
                    _mm512_loadu_si512(self.column_sums[first..].as_ptr().cast()),
                    _mm512_loadu_ps(columns.scales[first..].as_ptr()),
                    _mm512_loadu_ps(columns.bias[first..].as_ptr()),
                    first,
                )
            }
        });
        for (i, row_sums) in acc.iter().enumerate() {
            let zero = _mm512_set1_epi32(x.zero_points[r + i]);
            let row_scale = _mm512_set1_ps(x.scales[r + i]);
            for (&sum, &(mask, sums, scales, bias, first)) in row_sums.iter().zip(&blocks) {
                let centred = _mm512_sub_epi32(sum, _mm512_mullo_epi32(zero, sums));
                let value = _mm512_fmadd_ps(
                    _mm512_cvtepi32_ps(centred),
                    _mm512_mul_ps(row_scale, scales),
                    bias,
                );
                // SAFETY: the mask keeps the store inside row r + i of the output, in columns
                // that no other task writes.
                unsafe {
                    _mm512_mask_storeu_ps(out.ptr.add((r + i) * out.stride + first), mask, value)
                };
            }
        }
    }
}

/// Per-output-column factors of the result, padded to whole blocks.
struct Columns<'a> {
    scales: &'a [f32],
    bias: &'a [f32],
}

/// The output matrix, shared by tasks that write disjoint columns of it.
#[derive(Clone, Copy)]
struct OutputRows {
    ptr: *mut f32,
    stride: usize,
}

// SAFETY: tasks write disjoint elements and the matrix outlives them (see `PackedWeights::matmul`).
unsafe impl Send for OutputRows {}
unsafe impl Sync for OutputRows {}

/// Input rows rounded to 8 bits, padded to whole groups.
struct QuantizedRows {
    rows: usize,
    stride: usize,
    values: Vec<u8>,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
}

impl QuantizedRows {
    fn new(x: &[f32], rows: usize, in_dim: usize, stride: usize) -> Self {
        let mut values = vec![0u8; rows * stride];
        let mut scales = Vec::with_capacity(rows);
        let mut zero_points = Vec::with_capacity(rows);
        for (row, dst) in x.chunks_exact(in_dim).zip(values.chunks_exact_mut(stride)) {
            // SAFETY: `available()` holds wherever this runs (see `PackedWeights::matmul`).
            let (scale, zero) = unsafe { quantize_row(row, dst) };
            scales.push(scale);
            zero_points.push(zero);
        }
        Self {
            rows,
            stride,
            values,
            scales,
            zero_points,
        }
    }

    fn row(&self, r: usize) -> &[u8] {
        &self.values[r * self.stride..(r + 1) * self.stride]
    }
}

/// Rounds `row` into `dst` (at least as long) and returns its scale and zero point. The range is
/// widened to hold 0, so an all-zero row (or one of non-finite values) gets scale 1 and zero 0.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_row(row: &[f32], dst: &mut [u8]) -> (f32, i32) {
    let tail_mask = |len: usize| -> __mmask16 { ((1u32 << len) - 1) as __mmask16 };
    let chunks = row.chunks(16);
    let (mut low, mut high) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    for chunk in chunks.clone() {
        // SAFETY: the mask covers only the chunk's elements.
        let v = unsafe { _mm512_maskz_loadu_ps(tail_mask(chunk.len()), chunk.as_ptr()) };
        low = _mm512_min_ps(low, v);
        high = _mm512_max_ps(high, v);
    }
    let (low, high) = (_mm512_reduce_min_ps(low), _mm512_reduce_max_ps(high));
    let range = high - low;
    if !(range > 0.0 && range.is_finite()) {
        dst[..row.len()].fill(0);
        return (1.0, 0);
    }
    let scale = range / 255.0;
    let zero = (-low / scale).round_ties_even().clamp(0.0, 255.0);
    let (inverse, zero_v) = (_mm512_set1_ps(1.0 / scale), _mm512_set1_ps(zero));
    let (floor, ceiling) = (_mm512_setzero_si512(), _mm512_set1_epi32(255));
    for (i, chunk) in chunks.enumerate() {
        let mask = tail_mask(chunk.len());
        // SAFETY: the mask covers only the chunk's elements, in `row` and in `dst`.
        unsafe {
            let v = _mm512_maskz_loadu_ps(mask, chunk.as_ptr());
            // Converted with the default rounding, to nearest even.
            let q = _mm512_cvtps_epi32(_mm512_fmadd_ps(v, inverse, zero_v));
            let q = _mm512_min_epi32(_mm512_max_epi32(q, floor), ceiling);
            _mm512_mask_cvtepi32_storeu_epi8(dst.as_mut_ptr().add(i * 16).cast(), mask, q);
        }
    }
    (scale, zero as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::tests::seeded;

    /// The kernel against the same quantization summed one product at a time: packing, tiles,
    /// tails and the parallel split must give exactly those sums.
    #[test]
    fn sums_exactly_what_the_quantized_inputs_give() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 VNNI");
            return;
        }
        // Row tiles of every height (7 = 4 + 3, 6 = 4 + 2, 41 = 10 * 4 + 1) against four blocks,
        // partial blocks and block groups, and a product large enough to run in parallel.
        let shapes = [
            (1, 1, 1),
            (3, 17, 21),
            (6, 40, 64),
            (7, 64, 40),
            (6, 64, 24),
            (41, 300, 400),
        ];
        for (rows, out_dim, in_dim) in shapes {
            let w: Vec<i16> = seeded(out_dim * in_dim, 3)
                .iter()
                .map(|v| (v * 127.0).round() as i16)
                .collect();
            let x = seeded(rows * in_dim, 4);
            let padded = out_dim.next_multiple_of(BLOCK);
            let scales: Vec<f32> = (0..padded).map(|j| 0.5 + j as f32 / 64.0).collect();
            let packed = PackedWeights::new(&w, out_dim, in_dim);
            let bias: Vec<f32> = (0..padded).map(|j| j as f32 - 3.0).collect();
            let got = packed.matmul(&x, rows, &scales, &bias);
            let q = QuantizedRows::new(&x, rows, in_dim, packed.groups * GROUP);
            for r in 0..rows {
                for j in 0..out_dim {
                    let dot: i32 = (0..in_dim)
                        .map(|k| (q.row(r)[k] as i32 - q.zero_points[r]) * w[j * in_dim + k] as i32)
                        .sum();
                    let product = dot as f32 * q.scales[r] * scales[j];
                    let expected = product + bias[j];
                    let value = got[r * out_dim + j];
                    // Float rounding only: relative to the terms added.
                    assert!(
                        (value - expected).abs() <= 1e-5 * (product.abs() + bias[j].abs() + 1.0),
                        "{rows}x{in_dim}x{out_dim} at ({r}, {j}): {value} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn constant_and_zero_rows_round_trip() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 VNNI");
            return;
        }
        let x = [0.0f32, 0.0, 0.0, 3.5, 3.5, 3.5, -1.0, 2.0, 0.5];
        let q = QuantizedRows::new(&x, 3, 3, 4);
        for r in 0..3 {
            for k in 0..3 {
                let back = (q.row(r)[k] as i32 - q.zero_points[r]) as f32 * q.scales[r];
                assert!(
                    (back - x[r * 3 + k]).abs() <= q.scales[r] / 2.0 + 1e-6,
                    "{r} {k}"
                );
            }
        }
    }
}
