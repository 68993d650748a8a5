//! AVX2, for x86-64 CPUs without AVX-512 VNNI: each packed group is two 32-byte halves of 8
//! columns. `vpmaddubsw` multiplies a half by the broadcast input group and adds neighbouring
//! products into i16, and `vpmaddwd` against ones adds those pairs into each column's i32 sum.
use std::arch::x86_64::*;

use super::{Columns, Isa, OutputRows, PackedWeights, QuantizedRows, BLOCK, GROUP};

/// Columns in one 256-bit vector of i32 sums.
const HALF: usize = BLOCK / 2;

/// Every input row against the column blocks `blocks`, in tiles of up to four rows by one block:
/// 8 accumulators, which with the two weight halves, the input and the constants fit AVX2's 16
/// registers.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn blocks(
    w: &PackedWeights,
    x: &QuantizedRows,
    blocks: std::ops::Range<usize>,
    columns: &Columns,
    out: OutputRows,
) {
    for b in blocks {
        let mut r = 0;
        while r < x.rows {
            let height = (x.rows - r).min(4);
            // SAFETY: the tile lies inside the inputs and the weights.
            unsafe {
                match height {
                    4 => tile::<4>(w, x, r, b, columns, out),
                    3 => tile::<3>(w, x, r, b, columns, out),
                    2 => tile::<2>(w, x, r, b, columns, out),
                    _ => tile::<1>(w, x, r, b, columns, out),
                }
            }
            r += height;
        }
    }
}

/// Input rows `r..r + R` against column block `b`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const R: usize>(
    w: &PackedWeights,
    x: &QuantizedRows,
    r: usize,
    b: usize,
    columns: &Columns,
    out: OutputRows,
) {
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    let ones = _mm256_set1_epi16(1);
    let x_rows: [*const u8; R] = std::array::from_fn(|i| x.row(r + i).as_ptr());
    let block = w.block(b).as_ptr();
    for g in 0..w.groups {
        // SAFETY: group g lies inside every input row (padded to whole groups) and the block;
        // loads may be unaligned.
        unsafe {
            let group = block.add(g * BLOCK * GROUP);
            let halves = [
                _mm256_loadu_si256(group.cast()),
                _mm256_loadu_si256(group.add(HALF * GROUP).cast()),
            ];
            for (row_acc, x_row) in acc.iter_mut().zip(x_rows) {
                let xv = _mm256_set1_epi32(x_row.add(g * GROUP).cast::<i32>().read_unaligned());
                for (a, &half) in row_acc.iter_mut().zip(&halves) {
                    // Inputs of at most 127 keep each pair of products inside i16.
                    let pairs = _mm256_maddubs_epi16(xv, half);
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(pairs, ones));
                }
            }
        }
    }
    let real = w.real_columns(b);
    for half in 0..2 {
        let first = b * BLOCK + half * HALF;
        let Some(lanes) = real.checked_sub(half * HALF).filter(|&n| n > 0) else {
            break;
        };
        // SAFETY: the sums, scales and biases are padded to whole blocks.
        let (sums, scales, bias) = unsafe {
            (
                _mm256_loadu_si256(w.column_sums[first..].as_ptr().cast()),
                _mm256_loadu_ps(columns.scales[first..].as_ptr()),
                _mm256_loadu_ps(columns.bias[first..].as_ptr()),
            )
        };
        let keep = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(lanes as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        for (i, row_acc) in acc.iter().enumerate() {
            let zero = _mm256_set1_epi32(x.zero_points[r + i]);
            let row_scale = _mm256_set1_ps(x.scales[r + i]);
            let centred = _mm256_sub_epi32(row_acc[half], _mm256_mullo_epi32(zero, sums));
            let value = _mm256_fmadd_ps(
                _mm256_cvtepi32_ps(centred),
                _mm256_mul_ps(row_scale, scales),
                bias,
            );
            // SAFETY: `keep` holds the store inside row r + i of the output, in columns that no
            // other task writes.
            unsafe {
                let dst = out.ptr.add((r + i) * out.stride + first);
                if lanes >= HALF {
                    _mm256_storeu_ps(dst, value);
                } else {
                    _mm256_maskstore_ps(dst, keep, value);
                }
            }
        }
    }
}

/// The largest rounded input.
const MAX: u8 = Isa::Avx2.input_max();

/// Rounds `row` into `dst` (at least as long) as `0..=MAX` and returns its scale and zero point.
/// Plain loops: compiled for AVX2 and FMA, they vectorize.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_row(row: &[f32], dst: &mut [u8]) -> (f32, i32) {
    crate::kernels::int8::round_unsigned(row, dst, MAX)
}
