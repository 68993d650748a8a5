//! Rounding input rows to integers before an int8 product: symmetric (one scale a row, for the
//! portable kernel's 14-bit inputs) or with a zero point (the 7- and 8-bit unsigned inputs of the
//! relaxed-SIMD and x86 kernels).
//!
//! Plain loops serve native builds, where they are inlined into functions compiled for AVX2 and
//! vectorize. Compiled to WebAssembly they stay scalar (LLVM vectorizes neither the `f32::min` /
//! `f32::max` reductions nor the saturating casts there), at about 4 ns a value: in Chromium a
//! fifth to a third of a title's 384-wide products and a third to a half of its 1,536-wide one.
//! So WASM SIMD128 builds take 16 values at a time with the same operations in the same order,
//! which give the same integers to the bit for finite inputs. LLVM compiles `f32x4.pmin` / `pmax` to relaxed SIMD's
//! `relaxed_min` / `relaxed_max` where that is enabled, whose result for a NaN is the engine's
//! choice, so NaN lanes are set to 0 before the range is taken (0 is in it already: NaN values
//! are left out of the range, as the scalar folds leave them), and rounded values are clamped as
//! integers.

/// `(scale, 1/scale)` mapping the row's largest magnitude to `max` (1 for an all-zero row).
pub(crate) fn scale_for(row: &[f32], max: f32) -> (f32, f32) {
    let largest = largest_magnitude(row);
    if largest > 0.0 && largest.is_finite() {
        (largest / max, max / largest)
    } else {
        (1.0, 0.0)
    }
}

/// Rounds `row` into `dst` (as long) as integers in `-max..=max` and returns the scale.
#[inline(always)]
pub(crate) fn round_symmetric(row: &[f32], dst: &mut [i16], max: f32) -> f32 {
    let (scale, inverse) = scale_for(row, max);
    let done = simd::round_symmetric(row, dst, inverse);
    for (q, &v) in dst[done..].iter_mut().zip(&row[done..]) {
        *q = (v * inverse).round_ties_even() as i16;
    }
    scale
}

/// The scale and zero point that map `low..=high` (already widened to hold 0) onto `0..=max`, or
/// `None` for an empty or non-finite range (the row is then all zeros with scale 1).
pub(crate) fn scale_and_zero(low: f32, high: f32, max: u8) -> Option<(f32, f32)> {
    let range = high - low;
    if !(range > 0.0 && range.is_finite()) {
        return None;
    }
    let scale = range / max as f32;
    Some((
        scale,
        (-low / scale).round_ties_even().clamp(0.0, max as f32),
    ))
}

/// Rounds `row` into `dst` (at least as long) as `0..=max` with a zero point, the range widened
/// to hold 0, and returns the scale and zero point.
#[inline(always)]
pub(crate) fn round_unsigned(row: &[f32], dst: &mut [u8], max: u8) -> (f32, i32) {
    let (low, high) = range_with_zero(row);
    let Some((scale, zero)) = scale_and_zero(low, high, max) else {
        dst[..row.len()].fill(0);
        return (1.0, 0);
    };
    let inverse = 1.0 / scale;
    let done = simd::round_unsigned(row, dst, inverse, zero, max);
    for (q, &v) in dst[done..].iter_mut().zip(&row[done..]) {
        // WASM has no fused multiply-add: `mul_add` there is a software call per value.
        #[cfg(target_arch = "wasm32")]
        let shifted = v * inverse + zero;
        #[cfg(not(target_arch = "wasm32"))]
        let shifted = v.mul_add(inverse, zero);
        *q = shifted.round_ties_even().clamp(0.0, max as f32) as u8;
    }
    (scale, zero as i32)
}

/// The largest `|v|` of the row (0 for an empty one; NaN values skipped).
#[inline(always)]
fn largest_magnitude(row: &[f32]) -> f32 {
    let (largest, done) = simd::largest_magnitude(row);
    row[done..].iter().fold(largest, |m, v| m.max(v.abs()))
}

/// The row's smallest and largest values, widened to hold 0 (NaN values skipped).
#[inline(always)]
fn range_with_zero(row: &[f32]) -> (f32, f32) {
    let (start, done) = simd::range_with_zero(row);
    row[done..]
        .iter()
        .fold(start, |(low, high), &v| (low.min(v), high.max(v)))
}

/// Each function does a whole number of 16-value chunks from the start of the row and says how
/// many values that was; the scalar loops above finish the rest.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    const LANES: usize = 16;

    /// Four vectors of the row from `i` (`i + 16 <= row.len()`).
    #[inline(always)]
    fn load16(row: &[f32], i: usize) -> [v128; 4] {
        let row = &row[i..i + LANES];
        // SAFETY: `row` holds 16 floats; v128_load accepts unaligned addresses.
        core::array::from_fn(|v| unsafe { v128_load(row.as_ptr().add(4 * v) as *const v128) })
    }

    /// How many values of `row` the whole chunks hold.
    #[inline(always)]
    fn whole(row: &[f32]) -> usize {
        row.len() - row.len() % LANES
    }

    /// Where each whole chunk starts.
    #[inline(always)]
    fn chunks(row: &[f32]) -> impl Iterator<Item = usize> {
        (0..whole(row)).step_by(LANES)
    }

    /// `v` with its NaN lanes set to 0.
    #[inline(always)]
    fn nan_to_zero(v: v128) -> v128 {
        v128_and(v, f32x4_eq(v, v))
    }

    fn lanes(v: v128) -> [f32; 4] {
        [
            f32x4_extract_lane::<0>(v),
            f32x4_extract_lane::<1>(v),
            f32x4_extract_lane::<2>(v),
            f32x4_extract_lane::<3>(v),
        ]
    }

    #[inline(always)]
    pub fn largest_magnitude(row: &[f32]) -> (f32, usize) {
        let mut largest = [f32x4_splat(0.0); 4];
        for i in chunks(row) {
            for (m, v) in largest.iter_mut().zip(load16(row, i)) {
                *m = f32x4_pmax(*m, nan_to_zero(f32x4_abs(v)));
            }
        }
        let [a, b, c, d] = largest;
        let all = f32x4_pmax(f32x4_pmax(a, b), f32x4_pmax(c, d));
        let m = lanes(all).into_iter().fold(0f32, f32::max);
        (m, whole(row))
    }

    #[inline(always)]
    pub fn range_with_zero(row: &[f32]) -> ((f32, f32), usize) {
        let mut low = [f32x4_splat(0.0); 4];
        let mut high = [f32x4_splat(0.0); 4];
        for i in chunks(row) {
            for (v, x) in load16(row, i).into_iter().enumerate() {
                let x = nan_to_zero(x);
                low[v] = f32x4_pmin(low[v], x);
                high[v] = f32x4_pmax(high[v], x);
            }
        }
        let low = f32x4_pmin(f32x4_pmin(low[0], low[1]), f32x4_pmin(low[2], low[3]));
        let high = f32x4_pmax(f32x4_pmax(high[0], high[1]), f32x4_pmax(high[2], high[3]));
        (
            (
                lanes(low).into_iter().fold(0f32, f32::min),
                lanes(high).into_iter().fold(0f32, f32::max),
            ),
            whole(row),
        )
    }

    /// `round(v * inverse)` as i16 (saturating, as `as i16` is).
    #[inline(always)]
    pub fn round_symmetric(row: &[f32], dst: &mut [i16], inverse: f32) -> usize {
        let inverse = f32x4_splat(inverse);
        for i in chunks(row) {
            let q =
                load16(row, i).map(|v| i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(v, inverse))));
            let out = &mut dst[i..i + LANES];
            // SAFETY: `out` holds 16 i16s, two vectors.
            unsafe {
                v128_store(
                    out.as_mut_ptr() as *mut v128,
                    i16x8_narrow_i32x4(q[0], q[1]),
                );
                v128_store(
                    out.as_mut_ptr().add(8) as *mut v128,
                    i16x8_narrow_i32x4(q[2], q[3]),
                );
            }
        }
        whole(row)
    }

    /// `clamp(round(v * inverse + zero), 0, max)` as u8.
    #[inline(always)]
    pub fn round_unsigned(row: &[f32], dst: &mut [u8], inverse: f32, zero: f32, max: u8) -> usize {
        let (inverse, zero) = (f32x4_splat(inverse), f32x4_splat(zero));
        let (floor, ceiling) = (i32x4_splat(0), i32x4_splat(max as i32));
        for i in chunks(row) {
            let q = load16(row, i).map(|v| {
                let rounded = f32x4_nearest(f32x4_add(f32x4_mul(v, inverse), zero));
                // Whole numbers: clamped as integers, the same clamp.
                i32x4_min(i32x4_max(i32x4_trunc_sat_f32x4(rounded), floor), ceiling)
            });
            let bytes = u8x16_narrow_i16x8(
                i16x8_narrow_i32x4(q[0], q[1]),
                i16x8_narrow_i32x4(q[2], q[3]),
            );
            let out = &mut dst[i..i + LANES];
            // SAFETY: `out` holds 16 bytes.
            unsafe { v128_store(out.as_mut_ptr() as *mut v128, bytes) };
        }
        whole(row)
    }
}

/// Elsewhere the scalar loops do it all.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod simd {
    #[inline(always)]
    pub fn largest_magnitude(_: &[f32]) -> (f32, usize) {
        (0.0, 0)
    }

    #[inline(always)]
    pub fn range_with_zero(_: &[f32]) -> ((f32, f32), usize) {
        ((0.0, 0.0), 0)
    }

    #[inline(always)]
    pub fn round_symmetric(_: &[f32], _: &mut [i16], _: f32) -> usize {
        0
    }

    #[inline(always)]
    pub fn round_unsigned(_: &[f32], _: &mut [u8], _: f32, _: f32, _: u8) -> usize {
        0
    }
}
