//! The x86-64 kernels behind [`crate::kernels::int8::Int8Matrix`]: unsigned 8-bit inputs times signed 8-bit
//! weights, summed in i32.
//!
//! Inputs are rounded per row to 8 bits with a zero point (as onnxruntime's dynamic quantization
//! does per tensor): `x ~ scale * (q - zero)`, the range widened to hold 0. Then
//! `sum_k x_k w_k ~ scale * (sum_k q_k w_k - zero * sum_k w_k)`, and the weights' column sums are
//! kept from load.
//!
//! Weights are packed in blocks of 16 output columns: for each group of 4 consecutive inputs, 64
//! bytes hold those 4 weights of each of the 16 columns. One input row's group, broadcast to every
//! lane, then feeds each column's sum in place, so sums never need adding across lanes. Three
//! instruction sets multiply them:
//! - [`amx`], Intel AMX: `tdpbusd` multiplies whole tiles, 16 rows by 16 columns by 64 inputs, in
//!   one instruction; a column block's groups are its weight tiles as they lie;
//! - [`vnni`], AVX-512 VNNI: `vpdpbusd` does 64 byte multiply-adds into 16 sums in one instruction;
//! - [`avx2`], for CPUs without it: `vpmaddubsw` then `vpmaddwd` do 32 into 8 sums in two. The
//!   first adds pairs of products in saturating i16, so inputs are rounded to 7 bits (0..=127)
//!   there: two products of at most 127 * 127 stay below 2^15.
//!
//! No i32 sum can overflow for the rows `Int8Matrix` allows (up to 4,096): each lane adds `k / 4`
//! sums of four products of at most 255 * 127.
use rayon::prelude::*;

use super::{round::scale_and_zero, Activation};

mod amx;
mod avx2;
mod vnni;

/// Output columns in one packed block.
const BLOCK: usize = crate::kernels::int8::OUTPUT_BLOCK;
/// Inputs per byte group of a multiply-add.
const GROUP: usize = 4;
/// Column blocks per parallel task: 64 columns, whose weights (up to 96 KB for rows of 1,536)
/// stay in L2 while every input row passes them.
const BLOCKS_PER_TASK: usize = 4;
/// Below this many multiply-adds a matmul runs on the calling thread, where waking a worker would
/// cost more than it saves (the classifier). A 14-token title's smallest layers, 384 x 384, are
/// about 2 million, and one at a time tags about 30% faster with them split over two cores.
const PARALLEL_FROM: usize = 1 << 20;

/// The instruction set a packed matrix is multiplied with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AMX tiles with int8 products, and AVX-512 VNNI (quantizing inputs, storing outputs).
    Amx,
    /// AVX-512 F, BW and VNNI.
    Vnni,
    /// AVX2 and FMA.
    Avx2,
}

impl Isa {
    /// Every instruction set, fastest first.
    pub const ALL: [Isa; 3] = [Isa::Amx, Isa::Vnni, Isa::Avx2];

    /// Those this CPU runs, fastest first.
    pub fn supported() -> impl Iterator<Item = Self> {
        Self::ALL.into_iter().filter(|isa| isa.available())
    }

    pub fn available(self) -> bool {
        match self {
            Isa::Amx => Isa::Vnni.available() && amx::cpu_has() && amx::os_allows(),
            Isa::Vnni => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
            }
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        }
    }

    /// The largest rounded input.
    const fn input_max(self) -> u8 {
        match self {
            Isa::Amx | Isa::Vnni => 255,
            Isa::Avx2 => 127,
        }
    }
}

/// `(out, in)` int8 weights laid out for the kernels.
#[derive(Clone, Debug)]
pub struct PackedWeights {
    isa: Isa,
    out_dim: usize,
    in_dim: usize,
    /// Groups of [`GROUP`] inputs: `in_dim` rounded up (for AMX, to whole tiles of groups).
    groups: usize,
    /// Blocks of [`BLOCK`] columns: `out_dim` rounded up.
    blocks: usize,
    /// `[block][group][column in block][input in group]`, zero past `in_dim` and `out_dim` (for
    /// AMX, one more zero block when `blocks` is odd).
    weights: Vec<i8>,
    /// Sum of each column's weights, for the inputs' zero points (padded to whole blocks).
    column_sums: Vec<i32>,
}

impl PackedWeights {
    /// `weights`: `(out, in)` row-major values in -127..=127, multiplied with `isa`, which the
    /// caller has checked is [`Isa::available`].
    pub fn new(isa: Isa, weights: &[i16], out_dim: usize, in_dim: usize) -> Self {
        assert!(isa.available(), "int8: this CPU lacks {isa:?}");
        let blocks = out_dim.div_ceil(BLOCK);
        let (groups, stored_blocks) = match isa {
            Isa::Amx => (
                in_dim.div_ceil(GROUP).next_multiple_of(amx::TILE_GROUPS),
                blocks.next_multiple_of(2),
            ),
            Isa::Vnni | Isa::Avx2 => (in_dim.div_ceil(GROUP), blocks),
        };
        let mut packed = vec![0i8; stored_blocks * groups * BLOCK * GROUP];
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
            isa,
            out_dim,
            in_dim,
            groups,
            blocks,
            weights: packed,
            column_sums,
        }
    }

    /// `x`: `(rows, in)` f32, row-major. Returns `(rows, out)`: the products scaled by the inputs'
    /// scales and `weight_scales`, plus `bias`: one per output column, padded to whole blocks; then
    /// `activation`.
    pub fn matmul(
        &self,
        x: &[f32],
        rows: usize,
        weight_scales: &[f32],
        bias: &[f32],
        activation: Activation,
    ) -> Vec<f32> {
        let padded = self.blocks * BLOCK;
        assert!(
            weight_scales.len() >= padded && bias.len() >= padded,
            "int8: scales and bias must be padded to {padded} columns"
        );
        let inputs = QuantizedRows::new(self.isa, x, rows, self.in_dim, self.groups * GROUP);
        // AVX-512's epilogue applies the activation to each vector it stores; AVX2's is applied
        // after.
        let fused = matches!(self.isa, Isa::Amx | Isa::Vnni);
        let columns = Columns {
            scales: weight_scales,
            bias,
            gelu: fused && activation == Activation::GeluErf,
        };
        // Not zeroed: the kernels store every element (below), and a fill was 5% of tagging in
        // batches.
        let len = rows * self.out_dim;
        let mut out: Vec<f32> = Vec::with_capacity(len);
        let target = OutputRows {
            ptr: out.as_mut_ptr(),
            stride: self.out_dim,
        };
        let blocks = |first: usize, last: usize| {
            let blocks = first..last;
            // SAFETY: `new` checked that the CPU runs `isa`, and each task writes only its own
            // columns.
            unsafe {
                match self.isa {
                    Isa::Amx => amx::blocks(self, &inputs, blocks, &columns, target),
                    Isa::Vnni => vnni::blocks(self, &inputs, blocks, &columns, target),
                    Isa::Avx2 => avx2::blocks(self, &inputs, blocks, &columns, target),
                }
            }
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
        // SAFETY: the column blocks `0..self.blocks` ran, whole, and each stores every input row
        // of every one of its real columns (the masked stores of `tile`); together they are the
        // `out_dim` columns, so all `len` elements are initialized.
        unsafe { out.set_len(len) };
        if !fused && activation == Activation::GeluErf {
            crate::kernels::activations::gelu_erf_in_place(&mut out);
        }
        out
    }

    /// Column block `b`'s packed weights.
    fn block(&self, b: usize) -> &[i8] {
        let bytes = self.groups * BLOCK * GROUP;
        &self.weights[b * bytes..(b + 1) * bytes]
    }

    /// Output columns of block `b` that exist (the last block may be partial).
    fn real_columns(&self, b: usize) -> usize {
        (self.out_dim - b * BLOCK).min(BLOCK)
    }
}

/// Per-output-column factors of the result, padded to whole blocks.
struct Columns<'a> {
    scales: &'a [f32],
    bias: &'a [f32],
    /// GELU of each output as it is stored (the AVX-512 kernels only).
    gelu: bool,
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

/// Input rows rounded to 8 bits, padded to whole groups (for AMX, with zero rows after them up to
/// whole passes of its kernel).
struct QuantizedRows {
    rows: usize,
    stride: usize,
    values: Vec<u8>,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
}

impl QuantizedRows {
    /// Rounds each row to `0..=isa.input_max()`.
    fn new(isa: Isa, x: &[f32], rows: usize, in_dim: usize, stride: usize) -> Self {
        let stored_rows = match isa {
            Isa::Amx => rows.next_multiple_of(amx::ROWS_PER_PASS),
            Isa::Vnni | Isa::Avx2 => rows,
        };
        let mut values = vec![0u8; stored_rows * stride];
        let mut scales = Vec::with_capacity(rows);
        let mut zero_points = Vec::with_capacity(rows);
        for (row, dst) in x.chunks_exact(in_dim).zip(values.chunks_exact_mut(stride)) {
            // SAFETY: the CPU runs `isa` (checked when the weights were packed).
            let (scale, zero) = unsafe {
                match isa {
                    Isa::Amx | Isa::Vnni => vnni::quantize_row(row, dst),
                    Isa::Avx2 => avx2::quantize_row(row, dst),
                }
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::int8::tests::seeded;

    fn available() -> Vec<Isa> {
        let isas: Vec<Isa> = Isa::supported().collect();
        if isas.is_empty() {
            eprintln!("skipped: this CPU has neither AVX-512 VNNI nor AVX2");
        }
        isas
    }

    /// Each kernel against the same quantization summed one product at a time: packing, tiles,
    /// tails and the parallel split must give exactly those sums.
    #[test]
    fn sums_exactly_what_the_quantized_inputs_give() {
        // Row tiles of every height (7 = 4 + 3, 6 = 4 + 2, 41 = 10 * 4 + 1) against four blocks,
        // partial blocks (17 = 16 + 1, 21 = 16 + 5: AVX2's second half partial or empty) and block
        // groups, and a product large enough to run in parallel.
        let shapes = [
            (1, 1, 1),
            (3, 17, 21),
            (2, 21, 8),
            (6, 40, 64),
            (7, 64, 40),
            (6, 64, 24),
            (41, 300, 400),
        ];
        for isa in available() {
            for (rows, out_dim, in_dim) in shapes {
                let w: Vec<i16> = seeded(out_dim * in_dim, 3)
                    .iter()
                    .map(|v| (v * 127.0).round() as i16)
                    .collect();
                // The largest weights everywhere in one column: AVX2's i16 pair sums at their
                // extreme.
                let w: Vec<i16> = w
                    .chunks(in_dim)
                    .enumerate()
                    .flat_map(|(n, row)| row.iter().map(move |&v| if n == 1 { -127 } else { v }))
                    .collect();
                let x = seeded(rows * in_dim, 4);
                let padded = out_dim.next_multiple_of(BLOCK);
                let scales: Vec<f32> = (0..padded).map(|j| 0.5 + j as f32 / 64.0).collect();
                let packed = PackedWeights::new(isa, &w, out_dim, in_dim);
                let bias: Vec<f32> = (0..padded).map(|j| j as f32 - 3.0).collect();
                let got = packed.matmul(&x, rows, &scales, &bias, Activation::Identity);
                let q = QuantizedRows::new(isa, &x, rows, in_dim, packed.groups * GROUP);
                for r in 0..rows {
                    assert!(q.row(r).iter().all(|&v| v <= isa.input_max()));
                    for j in 0..out_dim {
                        let dot: i32 = (0..in_dim)
                            .map(|k| {
                                (q.row(r)[k] as i32 - q.zero_points[r]) * w[j * in_dim + k] as i32
                            })
                            .sum();
                        let product = dot as f32 * q.scales[r] * scales[j];
                        let expected = product + bias[j];
                        let value = got[r * out_dim + j];
                        // Float rounding only: relative to the terms added.
                        assert!(
                            (value - expected).abs()
                                <= 1e-5 * (product.abs() + bias[j].abs() + 1.0),
                            "{isa:?} {rows}x{in_dim}x{out_dim} at ({r}, {j}): {value} vs {expected}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rows_round_trip_within_half_a_step() {
        // Zero, constant, mixed and all-negative rows, and rows holding an infinity; 19 values pass one vector of 16
        // (or two of 8) into a tail.
        let mut x = vec![0.0f32; 19];
        x.extend([3.5f32; 19]);
        x.extend((0..19).map(|i| i as f32 / 6.0 - 1.0));
        x.extend((0..19).map(|i| -1.0 - i as f32));
        let rows = x.len() / 19;
        for isa in available() {
            let q = QuantizedRows::new(isa, &x, rows, 19, 20);
            for r in 0..rows {
                for k in 0..19 {
                    let back = (q.row(r)[k] as i32 - q.zero_points[r]) as f32 * q.scales[r];
                    assert!(
                        (back - x[r * 19 + k]).abs() <= q.scales[r] / 2.0 + 1e-6,
                        "{isa:?} {r} {k}: {back}"
                    );
                }
            }
            let bad = QuantizedRows::new(
                isa,
                &[f32::NAN, f32::INFINITY, -f32::INFINITY, 2.0],
                2,
                2,
                4,
            );
            assert!(bad.values.iter().all(|&v| v == 0) && bad.scales == [1.0, 1.0]);
        }
    }
}
