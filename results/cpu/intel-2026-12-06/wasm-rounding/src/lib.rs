#![allow(dead_code, static_mut_refs, clippy::missing_safety_doc)]
//! The browser's relaxed-SIMD int8 product and its input rounding, two versions side by side:
//! `old_int8/` and `new_int8/` hold the files run.sh copies in (`relaxed.rs`, and the rounding
//! functions of `mod.rs` or `round.rs`), the rest is a stand-in for their parent module.
mod kernels {
    pub mod activations {
        pub fn gelu_erf_in_place(_: &mut [f32]) {}
    }
}
mod old_int8 {
    pub const ROW_BLOCK: usize = 16;
    pub const MAX_INNER: usize = 4096;
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Activation { Identity, GeluErf }
    include!("old_int8/round_fns.rs");
    pub mod relaxed;
}
mod new_int8 {
    pub const ROW_BLOCK: usize = 16;
    pub const MAX_INNER: usize = 4096;
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Activation { Identity, GeluErf }
    pub mod round;
    pub(crate) use round::round_unsigned;
    pub mod relaxed;
}

static mut X: Vec<f32> = Vec::new();
static mut W: Vec<i16> = Vec::new();
static mut SCALES: Vec<f32> = Vec::new();
static mut BIAS: Vec<f32> = Vec::new();
static mut SHAPE: (usize, usize, usize) = (0, 0, 0);
static mut OLD: Option<old_int8::relaxed::RelaxedWeights> = None;
static mut NEW: Option<new_int8::relaxed::RelaxedWeights> = None;

#[no_mangle]
pub unsafe extern "C" fn init(rows: usize, k: usize, n: usize) {
    let mut s = 12345u32;
    let mut next = || { s = s.wrapping_mul(1664525).wrapping_add(1013904223); s };
    X = (0..rows * k).map(|_| (next() >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0).collect();
    W = (0..n * k).map(|_| ((next() >> 24) as i8).max(-127) as i16).collect();
    let pad = n.div_ceil(16) * 16;
    SCALES = (0..pad).map(|j| 0.01 + j as f32 * 1e-5).collect();
    BIAS = (0..pad).map(|j| j as f32 * 1e-3).collect();
    SHAPE = (rows, k, n);
    OLD = Some(old_int8::relaxed::RelaxedWeights::new(&W, n, k));
    NEW = Some(new_int8::relaxed::RelaxedWeights::new(&W, n, k));
}

#[no_mangle]
pub unsafe extern "C" fn run_old() -> f32 {
    OLD.as_ref().unwrap().matmul(&X, SHAPE.0, &SCALES, &BIAS, old_int8::Activation::Identity)[7]
}

#[no_mangle]
pub unsafe extern "C" fn run_new() -> f32 {
    NEW.as_ref().unwrap().matmul(&X, SHAPE.0, &SCALES, &BIAS, new_int8::Activation::Identity)[7]
}

/// How many outputs of the product differ to the bit between the two versions.
#[no_mangle]
pub unsafe extern "C" fn differ() -> usize {
    let a = OLD.as_ref().unwrap().matmul(&X, SHAPE.0, &SCALES, &BIAS, old_int8::Activation::Identity);
    let b = NEW.as_ref().unwrap().matmul(&X, SHAPE.0, &SCALES, &BIAS, new_int8::Activation::Identity);
    a.iter().zip(&b).filter(|(x, y)| x.to_bits() != y.to_bits()).count() + (a.len() != b.len()) as usize
}

/// Rows of every length 0..=70 with awkward values (NaN, infinities, -0, halves that round to
/// even, rows away from 0): how many rounded finite values or scales differ between the versions,
/// unsigned (7 bits) and symmetric (14 bits). NaN values are counted apart (`nan_diff`).
static mut NAN_DIFF: usize = 0;
static mut NAN_NEW_NONZERO: usize = 0;
static mut NAN_NEW_NONZERO_CHUNKS: usize = 0;
#[no_mangle]
pub unsafe extern "C" fn nan_new_nonzero_chunks() -> usize { NAN_NEW_NONZERO_CHUNKS }
#[no_mangle]
pub unsafe extern "C" fn nan_diff() -> usize { NAN_DIFF }
#[no_mangle]
pub unsafe extern "C" fn nan_new_nonzero() -> usize { NAN_NEW_NONZERO }
#[no_mangle]
pub unsafe extern "C" fn rounding_differs() -> usize {
    let mut s = 777u32;
    let mut bad = 0;
    for len in 0..=70usize {
        for case in 0..6 {
            let mut row: Vec<f32> = (0..len).map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * 3.0
            }).collect();
            if len > 0 {
                match case {
                    1 => row[len / 2] = f32::NAN,
                    2 => row[len - 1] = f32::INFINITY,
                    3 => row[0] = -0.0,
                    4 => for (i, v) in row.iter_mut().enumerate() { *v = i as f32 * 0.5 - 7.0 },
                    5 => row.iter_mut().for_each(|v| *v = v.abs() + 1.0),
                    _ => {}
                }
            }
            let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
            let ra = old_int8::round_unsigned(&row, &mut a, 127);
            let rb = new_int8::round::round_unsigned(&row, &mut b, 127);
            let u = (ra.0.to_bits() != rb.0.to_bits() || ra.1 != rb.1) as usize + a.iter().zip(&b).zip(&row).filter(|((x, y), v)| x != y && !v.is_nan()).count();
            NAN_DIFF += a.iter().zip(&b).zip(&row).filter(|((x, y), v)| x != y && v.is_nan()).count();
            let chunked = len - len % 16;
            for (i, (y, v)) in b.iter().zip(&row).enumerate() {
                if *y != 0 && v.is_nan() {
                    if i < chunked { NAN_NEW_NONZERO_CHUNKS += 1 } else { NAN_NEW_NONZERO += 1 }
                }
            }
            bad += u;
            let (mut a, mut b) = (vec![0i16; len], vec![0i16; len]);
            let (sa, inv) = old_int8::scale_for(&row, 8191.0);
            for (q, &v) in a.iter_mut().zip(&row) { *q = (v * inv).round_ties_even() as i16; }
            let sb = new_int8::round::round_symmetric(&row, &mut b, 8191.0);
            let u = (sa.to_bits() != sb.to_bits()) as usize + a.iter().zip(&b).filter(|(x, y)| x != y).count();
            bad += u;
        }
    }
    bad
}

#[no_mangle]
pub unsafe extern "C" fn round_old() -> u8 {
    let (rows, k, _) = SHAPE;
    let mut q = vec![0u8; rows * k];
    let mut acc = 0u8;
    for (row, dst) in X.chunks_exact(k).zip(q.chunks_exact_mut(k)) {
        acc ^= old_int8::round_unsigned(row, dst, 127).1 as u8;
    }
    acc ^ q[5]
}

#[no_mangle]
pub unsafe extern "C" fn round_new() -> u8 {
    let (rows, k, _) = SHAPE;
    let mut q = vec![0u8; rows * k];
    let mut acc = 0u8;
    for (row, dst) in X.chunks_exact(k).zip(q.chunks_exact_mut(k)) {
        acc ^= new_int8::round::round_unsigned(row, dst, 127).1 as u8;
    }
    acc ^ q[5]
}
