#![allow(clippy::missing_safety_doc)]
use core::arch::wasm32::*;

const ROWS: usize = 20;
const K: usize = 384;
const N: usize = 1536;

static mut X16: [i16; ROWS * K] = [0; ROWS * K];
static mut W16: [i16; N * K] = [0; N * K];
static mut X8: [u8; ROWS * K] = [0; ROWS * K];
static mut W8: [i8; N * K] = [0; N * K];
static mut OUT: [i32; ROWS * N] = [0; ROWS * N];

#[no_mangle]
pub unsafe extern "C" fn init() {
    let mut s = 12345u32;
    for i in 0..ROWS * K {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        X16[i] = ((s >> 16) as i16) >> 3;
        X8[i] = ((s >> 24) & 127) as u8;
    }
    for i in 0..N * K {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        W16[i] = ((s >> 24) as i8) as i16;
        W8[i] = (s >> 24) as i8;
    }
}

#[inline(always)]
fn hsum(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v) + i32x4_extract_lane::<1>(v) + i32x4_extract_lane::<2>(v) + i32x4_extract_lane::<3>(v)
}

/// Our kernel's scheme: i16 x i16, 2 rows x 4 columns, 8 per step.
#[no_mangle]
pub unsafe extern "C" fn matmul_i16() -> i32 {
    let x = &*core::ptr::addr_of!(X16);
    let w = &*core::ptr::addr_of!(W16);
    let out = &mut *core::ptr::addr_of_mut!(OUT);
    for j in (0..N).step_by(4) {
        for r in (0..ROWS).step_by(2) {
            let mut acc = [[i32x4_splat(0); 4]; 2];
            let mut i = 0;
            while i < K {
                let x0 = v128_load(x.as_ptr().add(r * K + i) as *const v128);
                let x1 = v128_load(x.as_ptr().add((r + 1) * K + i) as *const v128);
                for c in 0..4 {
                    let wv = v128_load(w.as_ptr().add((j + c) * K + i) as *const v128);
                    acc[0][c] = i32x4_add(acc[0][c], i32x4_dot_i16x8(x0, wv));
                    acc[1][c] = i32x4_add(acc[1][c], i32x4_dot_i16x8(x1, wv));
                }
                i += 8;
            }
            for c in 0..4 {
                out[r * N + j + c] = hsum(acc[0][c]);
                out[(r + 1) * N + j + c] = hsum(acc[1][c]);
            }
        }
    }
    out[7]
}

/// Relaxed SIMD: i8 weights x 7-bit unsigned inputs, 16 per step.
#[no_mangle]
#[target_feature(enable = "relaxed-simd")]
pub unsafe extern "C" fn matmul_relaxed() -> i32 {
    let x = &*core::ptr::addr_of!(X8);
    let w = &*core::ptr::addr_of!(W8);
    let out = &mut *core::ptr::addr_of_mut!(OUT);
    for j in (0..N).step_by(4) {
        for r in (0..ROWS).step_by(2) {
            let mut acc = [[i32x4_splat(0); 4]; 2];
            let mut i = 0;
            while i < K {
                let x0 = v128_load(x.as_ptr().add(r * K + i) as *const v128);
                let x1 = v128_load(x.as_ptr().add((r + 1) * K + i) as *const v128);
                for c in 0..4 {
                    let wv = v128_load(w.as_ptr().add((j + c) * K + i) as *const v128);
                    acc[0][c] = i32x4_relaxed_dot_i8x16_i7x16_add(wv, x0, acc[0][c]);
                    acc[1][c] = i32x4_relaxed_dot_i8x16_i7x16_add(wv, x1, acc[1][c]);
                }
                i += 16;
            }
            for c in 0..4 {
                out[r * N + j + c] = hsum(acc[0][c]);
                out[(r + 1) * N + j + c] = hsum(acc[1][c]);
            }
        }
    }
    out[7]
}

/// The exact integer result for the relaxed inputs, scalar (to check the relaxed op's sums).
#[no_mangle]
pub unsafe extern "C" fn check_relaxed() -> i32 {
    let x = &*core::ptr::addr_of!(X8);
    let w = &*core::ptr::addr_of!(W8);
    let out = &*core::ptr::addr_of!(OUT);
    let mut bad = 0;
    for r in 0..ROWS {
        for j in 0..N {
            let s: i32 = (0..K).map(|i| x[r * K + i] as i32 * w[j * K + i] as i32).sum();
            if s != out[r * N + j] { bad += 1; }
        }
    }
    bad
}
