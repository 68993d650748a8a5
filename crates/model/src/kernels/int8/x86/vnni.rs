//! AVX-512 VNNI: `vpdpbusd` adds 4 byte products into each of 16 i32 lanes, so one packed group
//! (64 bytes) and one broadcast input group make 16 columns' partial sums in one instruction.
use std::arch::x86_64::*;

use crate::kernels::activations::gelu;

use super::{scale_and_zero, Columns, Isa, OutputRows, PackedWeights, QuantizedRows, BLOCK, GROUP};

/// Every input row against the column blocks `blocks`: tiles of up to four rows by up to four
/// blocks (16 accumulators).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn blocks(
    w: &PackedWeights,
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
                // Every row count gets its own tile, so the last rows of a title (14 rows are
                // 4 + 4 + 4 + 2) still share each weight load.
                match (height, width) {
                    (4, 4) => tile::<4, 4>(w, x, r, b, columns, out),
                    (3, 4) => tile::<3, 4>(w, x, r, b, columns, out),
                    (2, 4) => tile::<2, 4>(w, x, r, b, columns, out),
                    (1, 4) => tile::<1, 4>(w, x, r, b, columns, out),
                    (4, n) => (0..n).for_each(|c| tile::<4, 1>(w, x, r, b + c, columns, out)),
                    (h, n) => (0..h).for_each(|i| {
                        (0..n).for_each(|c| tile::<1, 1>(w, x, r + i, b + c, columns, out))
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
    w: &PackedWeights,
    x: &QuantizedRows,
    r: usize,
    b: usize,
    columns: &Columns,
    out: OutputRows,
) {
    let mut acc = [[_mm512_setzero_si512(); C]; R];
    let x_rows: [*const u8; R] = std::array::from_fn(|i| x.row(r + i).as_ptr());
    let w_blocks: [*const i8; C] = std::array::from_fn(|c| w.block(b + c).as_ptr());
    for g in 0..w.groups {
        // SAFETY: group g lies inside every input row (padded to whole groups) and every block;
        // loads may be unaligned.
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
    let blocks: [BlockFactors; C] = std::array::from_fn(|c| {
        // SAFETY: the CPU runs AVX-512 (this function's features).
        unsafe { BlockFactors::new(w, columns, b + c) }
    });
    for (i, row_sums) in acc.iter().enumerate() {
        for (&sum, factors) in row_sums.iter().zip(&blocks) {
            // SAFETY: as above; row r + i is an input row.
            unsafe { factors.store(x, r + i, sum, out) };
        }
    }
}

/// What turns a column block's i32 sums into outputs: which lanes are real columns, the columns'
/// weight sums (for the inputs' zero points), scales and biases.
pub(super) struct BlockFactors {
    mask: __mmask16,
    sums: __m512i,
    scales: __m512,
    bias: __m512,
    first: usize,
    gelu: bool,
}

impl BlockFactors {
    /// Column block `b`'s factors; `b` is a real block of `w`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn new(w: &PackedWeights, columns: &Columns, b: usize) -> Self {
        let first = b * BLOCK;
        // SAFETY: the sums, scales and biases are padded to whole blocks.
        unsafe {
            Self {
                mask: ((1u32 << w.real_columns(b)) - 1) as __mmask16,
                sums: _mm512_loadu_si512(w.column_sums[first..].as_ptr().cast()),
                scales: _mm512_loadu_ps(columns.scales[first..].as_ptr()),
                bias: _mm512_loadu_ps(columns.bias[first..].as_ptr()),
                first,
                gelu: columns.gelu,
            }
        }
    }

    /// Stores input row `r`'s outputs of this block from its 16 sums.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn store(&self, x: &QuantizedRows, r: usize, sum: __m512i, out: OutputRows) {
        let zero = _mm512_set1_epi32(x.zero_points[r]);
        let centred = _mm512_sub_epi32(sum, _mm512_mullo_epi32(zero, self.sums));
        let mut value = _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(centred),
            _mm512_mul_ps(_mm512_set1_ps(x.scales[r]), self.scales),
            self.bias,
        );
        if self.gelu {
            let mut lanes = [0f32; BLOCK];
            // SAFETY: `lanes` holds 16 floats. The loop compiles to vector arithmetic (this
            // function's features), so the values stay in registers.
            unsafe {
                _mm512_storeu_ps(lanes.as_mut_ptr(), value);
                lanes.iter_mut().for_each(|v| *v = gelu(*v));
                value = _mm512_loadu_ps(lanes.as_ptr());
            }
        }
        // SAFETY: the mask keeps the store inside row r of the output, in this block's columns,
        // which no other task writes.
        unsafe {
            _mm512_mask_storeu_ps(out.ptr.add(r * out.stride + self.first), self.mask, value)
        };
    }
}

/// The largest rounded input.
const MAX: u8 = Isa::Vnni.input_max();

/// Rounds `row` into `dst` (at least as long) as `0..=MAX` and returns its scale and zero point.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn quantize_row(row: &[f32], dst: &mut [u8]) -> (f32, i32) {
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
    let Some((scale, zero)) = scale_and_zero(low, high, MAX) else {
        dst[..row.len()].fill(0);
        return (1.0, 0);
    };
    let (inverse, zero_v) = (_mm512_set1_ps(1.0 / scale), _mm512_set1_ps(zero));
    let (floor, ceiling) = (_mm512_setzero_si512(), _mm512_set1_epi32(MAX as i32));
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
