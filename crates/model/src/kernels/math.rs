//! Elementary functions written so that loops over them vectorize: libm's `expf` is a call per
//! element, which keeps every loop around it scalar (in a CPU training step, GELU's derivative and
//! the attention softmax spent about 5% of the time inside `expf`). Here `exp` is branch-free
//! arithmetic and bit operations, so the compiler turns a loop of them into vector code, for
//! AVX-512 where [`softmax_in_place`]'s and the activations' loops are compiled for it, and for
//! WASM simd128.

/// e^x for f32, within about 2 ulp of libm's (checked below) for x in [-87.3, 88.3]; below that
/// range the result is 0 (as e^x rounds to zero or a subnormal there), above it e^88.3. NaN in,
/// NaN out. Cephes' `expf`: x = n ln 2 + r with |r| <= ln 2 / 2, a degree-6 polynomial for e^r,
/// and 2^n built in the exponent bits. No float-to-integer conversion: n's bits come out of the
/// rounding addition itself, since a saturating `as i32` kept the loops around it scalar.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two, so that n * LN2_HI is exact for the n that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer (|v| < 2^22) without a
    // rounding instruction, which baseline x86-64 and some vector units lack.
    const ROUND: f32 = 12_582_912.0;
    let nan = x.is_nan();
    let below = x < -87.3;
    let x = x.clamp(-87.3, 88.3);
    // v's low mantissa bits hold n (|n| <= 127) in two's complement, offset by ROUND's bits.
    let v = x * LOG2_E + ROUND;
    let n = v - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let two_n = f32::from_bits(v.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    // Selects, not branches: the loops stay vector code.
    if nan {
        x
    } else if below {
        0.0
    } else {
        er * two_n
    }
}

/// `row = softmax(row)`: e^(x - max) normalized to sum 1, compiled for AVX-512 where the CPU has
/// it. A row of -inf only stays what it was (NaN), as softmax over nothing has no value.
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { softmax_avx512(row) };
    }
    softmax_portable(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_avx512(row: &mut [f32]) {
    softmax_portable(row)
}

#[inline(always)]
fn softmax_portable(row: &mut [f32]) {
    let largest = row.iter().fold(f32::NEG_INFINITY, |m, &w| m.max(w));
    row.iter_mut().for_each(|w| *w = exp(*w - largest));
    let total: f32 = row.iter().sum();
    let inverse = 1.0 / total;
    row.iter_mut().for_each(|w| *w *= inverse);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm_over_its_range() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.000_731;
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_rows_sum_to_one_and_keep_their_order() {
        let mut row = vec![1.0f32, 3.0, -2.0, 3.0, 0.5, -80.0, 40.0];
        let want: Vec<f32> = {
            let m = 40.0f32;
            let e: Vec<f32> = row.iter().map(|&x| (x - m).exp()).collect();
            let s: f32 = e.iter().sum();
            e.iter().map(|v| v / s).collect()
        };
        softmax_in_place(&mut row);
        for (g, w) in row.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6 * w.max(1e-30) + 1e-30, "{g} vs {w}");
        }
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let mut masked = vec![0.5f32, f32::NEG_INFINITY, 0.5];
        softmax_in_place(&mut masked);
        assert_eq!(masked, vec![0.5, 0.0, 0.5]);
    }
}
