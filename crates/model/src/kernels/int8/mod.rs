//! Weight-only int8 matmul for the browser and the CPU: `y = x W^T` with `W` rounded to int8 per
//! output row (one f32 scale a row, as onnxruntime's per-channel quantization).
//!
//! On x86-64 CPUs with AMX, AVX-512 VNNI or AVX2, [`x86`] rounds inputs to 8 bits and multiplies byte
//! pairs; a WASM build with relaxed SIMD does the same with 7-bit inputs ([`relaxed`]). Elsewhere
//! (WASM SIMD128 included) each input row is rounded to 14-bit integers (one scale a
//! row), so the products are exact integer dot products: WASM SIMD128 has no fused multiply-add,
//! so candle's f32 GEMM does 4 multiply-adds in two instructions, while `i32x4.dot_i16x8_s` does 8
//! in one. The weights are kept widened to i16 so the inner loop is nothing but loads, dot products
//! and adds. 14-bit inputs keep the rounding of activations negligible next to that of the
//! weights; the bound below keeps every i32 lane from overflowing for rows up to 4,096 long.
//! [`round`] does the rounding of input rows for every kernel.
//!
//! `MULTITAG_INT8_KERNEL` (`amx`, `vnni`, `avx2`, `relaxed` or `portable`) picks a kernel other than
//! the fastest the CPU runs, to compare them on one machine (`relaxed` outside WASM: its sums taken
//! one product at a time).
use candle_core::{Result, Tensor};

use super::dispatch::f32_slice;
pub(crate) use round::round_unsigned;
use round::scale_for;

mod portable;
mod relaxed;
mod round;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Largest magnitude an input row is scaled to: 2^13 - 1.
const INPUT_MAX: f32 = 8191.0;
/// Largest magnitude of a weight.
const WEIGHT_MAX: f32 = 127.0;
/// Input rows multiplied against the weights in one pass: their quantized values (16 rows of up to
/// 1,536) stay in cache while every weight row streams by once, instead of once per input row.
const ROW_BLOCK: usize = 16;
/// Longest row the i32 accumulators allow: each of the 4 lanes sums `k / 4` products of at most
/// 8191 * 127, which must stay below 2^31.
pub const MAX_INNER: usize = 4096;
/// Scales and biases are padded with zeros to a multiple of this many outputs: the x86 kernels'
/// column block, so that they load them as whole vectors.
pub(crate) const OUTPUT_BLOCK: usize = 16;

/// What is applied to each output of a matmul as it is stored: a following activation fused into
/// the product saves a pass over the output and a second buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    #[default]
    Identity,
    /// GELU, erf form ([`crate::kernels::gelu_erf`]).
    GeluErf,
}

/// `(out, in)` weights as int8 values with one scale per output row, and an f32 bias added to
/// the products as they are stored (zero unless [`Int8Matrix::with_bias`]).
#[derive(Clone, Debug)]
pub struct Int8Matrix {
    out_dim: usize,
    in_dim: usize,
    weights: Kernel,
    /// One per output, padded to whole [`OUTPUT_BLOCK`]s.
    scales: Vec<f32>,
    /// One per output, padded to whole [`OUTPUT_BLOCK`]s.
    bias: Vec<f32>,
}

/// The weights as the kernel that multiplies them wants them.
#[derive(Clone, Debug)]
enum Kernel {
    /// Row-major, widened to i16, for the portable (and WASM SIMD128) kernel.
    Portable(portable::PortableWeights),
    Relaxed(relaxed::RelaxedWeights),
    #[cfg(target_arch = "x86_64")]
    Packed(x86::PackedWeights),
}

/// The kernels [`Int8Matrix::quantize`] can choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    Portable,
    Relaxed,
    #[cfg(target_arch = "x86_64")]
    Packed(x86::Isa),
}

impl Choice {
    /// `MULTITAG_INT8_KERNEL` if set, else the fastest this CPU runs: decided once per process,
    /// not once per matrix.
    fn from_env() -> Result<Self> {
        static CHOICE: std::sync::OnceLock<std::result::Result<Choice, String>> =
            std::sync::OnceLock::new();
        CHOICE
            .get_or_init(|| Self::decide().map_err(|e| e.to_string()))
            .clone()
            .map_err(candle_core::Error::msg)
    }

    fn decide() -> Result<Self> {
        let Ok(name) = std::env::var("MULTITAG_INT8_KERNEL") else {
            if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) {
                return Ok(Choice::Relaxed);
            }
            #[cfg(target_arch = "x86_64")]
            if let Some(isa) = x86::Isa::supported().next() {
                return Ok(Choice::Packed(isa));
            }
            return Ok(Choice::Portable);
        };
        let choice = match name.as_str() {
            "portable" => Choice::Portable,
            "relaxed" => Choice::Relaxed,
            #[cfg(target_arch = "x86_64")]
            "amx" => Choice::Packed(x86::Isa::Amx),
            #[cfg(target_arch = "x86_64")]
            "vnni" => Choice::Packed(x86::Isa::Vnni),
            #[cfg(target_arch = "x86_64")]
            "avx2" => Choice::Packed(x86::Isa::Avx2),
            other => candle_core::bail!(
                "MULTITAG_INT8_KERNEL={other}: expected amx, vnni, avx2, relaxed or portable \
                 (x86-64 only for the first three)"
            ),
        };
        #[cfg(target_arch = "x86_64")]
        if let Choice::Packed(isa) = choice {
            if !isa.available() {
                candle_core::bail!("MULTITAG_INT8_KERNEL={name}: this CPU lacks {isa:?}")
            }
        }
        Ok(choice)
    }

    /// Every kernel this CPU runs, with the error its rounding of inputs allows in the tests:
    /// relative to the product's largest magnitude.
    #[cfg(test)]
    fn available() -> Vec<(Self, f32)> {
        // 7-bit inputs round to 1/127 of their row's range.
        let mut choices = vec![(Choice::Portable, 0.01), (Choice::Relaxed, 0.02)];
        #[cfg(target_arch = "x86_64")]
        choices.extend(x86::Isa::supported().map(|isa| {
            let tolerance = match isa {
                x86::Isa::Amx | x86::Isa::Vnni => 0.01,
                x86::Isa::Avx2 => 0.02,
            };
            (Choice::Packed(isa), tolerance)
        }));
        choices
    }
}

impl Int8Matrix {
    /// Quantizes a row-major `(out, in)` f32 matrix for the fastest kernel this CPU runs (or the
    /// one `MULTITAG_INT8_KERNEL` names).
    pub fn quantize(w: &[f32], out_dim: usize, in_dim: usize) -> Result<Self> {
        Self::quantize_with(Choice::from_env()?, w, out_dim, in_dim)
    }

    fn quantize_with(choice: Choice, w: &[f32], out_dim: usize, in_dim: usize) -> Result<Self> {
        let matrix = Self::quantize_portable(w, out_dim, in_dim)?;
        match (choice, &matrix.weights) {
            (Choice::Relaxed, Kernel::Portable(portable)) => Ok(Self {
                weights: Kernel::Relaxed(relaxed::RelaxedWeights::new(
                    portable.weights(),
                    out_dim,
                    in_dim,
                )),
                ..matrix
            }),
            #[cfg(target_arch = "x86_64")]
            (Choice::Packed(isa), Kernel::Portable(portable)) => {
                let packed = x86::PackedWeights::new(isa, portable.weights(), out_dim, in_dim);
                Ok(Self {
                    weights: Kernel::Packed(packed),
                    ..matrix
                })
            }
            _ => Ok(matrix),
        }
    }

    /// Quantizes for the portable kernel whatever the CPU (the reference the x86 kernels are
    /// tested against).
    pub fn quantize_portable(w: &[f32], out_dim: usize, in_dim: usize) -> Result<Self> {
        if w.len() != out_dim * in_dim {
            candle_core::bail!("int8: {} values for a {out_dim}x{in_dim} matrix", w.len())
        }
        if in_dim == 0 {
            candle_core::bail!("int8: a {out_dim}x0 matrix")
        }
        if in_dim > MAX_INNER {
            candle_core::bail!("int8: rows of {in_dim} exceed {MAX_INNER}")
        }
        let padded = out_dim.next_multiple_of(OUTPUT_BLOCK);
        let mut weights = Vec::with_capacity(w.len());
        let mut scales = Vec::with_capacity(padded);
        for row in w.chunks_exact(in_dim) {
            let (scale, inverse) = scale_for(row, WEIGHT_MAX);
            scales.push(scale);
            weights.extend(row.iter().map(|&v| (v * inverse).round_ties_even() as i16));
        }
        scales.resize(padded, 0.0);
        Ok(Self {
            out_dim,
            in_dim,
            weights: Kernel::Portable(portable::PortableWeights::new(weights, out_dim, in_dim)),
            scales,
            bias: vec![0.0; padded],
        })
    }

    /// Adds `bias` (one value per output) to every product row.
    pub fn with_bias(mut self, bias: &Tensor) -> Result<Self> {
        let mut bias = bias.flatten_all()?.to_vec1::<f32>()?;
        if bias.len() != self.out_dim {
            candle_core::bail!(
                "int8: a bias of {} for {} outputs",
                bias.len(),
                self.out_dim
            )
        }
        bias.resize(self.scales.len(), 0.0);
        self.bias = bias;
        Ok(self)
    }

    pub fn from_tensor(w: &Tensor) -> Result<Self> {
        let (out_dim, in_dim) = w.dims2()?;
        let values = w.flatten_all()?.to_vec1::<f32>()?;
        Self::quantize(&values, out_dim, in_dim)
    }

    /// `x` is `(rows, in)` f32; returns `x W^T + bias`, `(rows, out)`.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        self.matmul_then(x, Activation::Identity)
    }

    /// `activation(x W^T + bias)`.
    pub fn matmul_then(&self, x: &Tensor, activation: Activation) -> Result<Tensor> {
        let (rows, in_dim) = x.dims2()?;
        if in_dim != self.in_dim {
            candle_core::bail!(
                "int8: input rows of {in_dim}, weights expect {}",
                self.in_dim
            )
        }
        // Read in place: a copy of the activations would be one more pass over them per layer.
        let x = x.contiguous()?;
        let (storage, layout) = x.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            candle_core::bail!("int8: the input is not on the CPU")
        };
        let input = f32_slice("int8", cpu, layout)?;
        let (scales, bias) = (&self.scales, &self.bias);
        let out = match &self.weights {
            Kernel::Portable(portable) => portable.matmul(input, rows, scales, bias, activation),
            Kernel::Relaxed(relaxed) => relaxed.matmul(input, rows, scales, bias, activation),
            #[cfg(target_arch = "x86_64")]
            Kernel::Packed(packed) => packed.matmul(input, rows, scales, bias, activation),
        };
        Tensor::from_vec(out, (rows, self.out_dim), x.device())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::Device;

    /// `n` values in [-1, 1) from a seed.
    pub(crate) fn seeded(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn every_kernel_matches_the_float_matmul() -> Result<()> {
        // 7 output rows (one past a group of four, and part of a 16-column block), rows of 21 (a
        // tail past the 8-lane and 4-byte steps), odd input row counts (one past a pair or a tile
        // of four), more input rows than one block, and one product large enough to run in
        // parallel.
        let shapes = [
            (3, 7, 21),
            (5, 12, 384),
            (2, 9, 1536),
            (37, 10, 40),
            (41, 300, 400),
        ];
        for (rows, out_dim, in_dim) in shapes {
            let w = seeded(out_dim * in_dim, 1);
            let x = Tensor::from_vec(seeded(rows * in_dim, 2), (rows, in_dim), &Device::Cpu)?;
            let expected =
                x.matmul(&Tensor::from_slice(&w, (out_dim, in_dim), &Device::Cpu)?.t()?)?;
            let scale = expected.abs()?.max_all()?.to_scalar::<f32>()?;
            for (choice, tolerance) in Choice::available() {
                let matrix = Int8Matrix::quantize_with(choice, &w, out_dim, in_dim)?;
                let got = matrix.matmul(&x)?;
                let diff = (&got - &expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
                // Weights to 1/254 of their row maximum and inputs to 1/16,382 of theirs (or, in
                // the x86 kernels, to 1/255 or 1/127 of their row's range): about a percent at
                // most.
                assert!(
                    diff < tolerance * scale,
                    "{choice:?} {rows}x{in_dim}x{out_dim}: {diff} vs {scale}"
                );
            }
        }
        Ok(())
    }

    /// Every kernel's fused GELU gives what GELU after its plain product gives (the same sums, so
    /// within float rounding), across the 16-column blocks' masked tails and the parallel split.
    #[test]
    fn a_fused_gelu_equals_gelu_after_the_product() -> Result<()> {
        for (rows, out_dim, in_dim) in [(3, 7, 21), (37, 40, 64), (41, 300, 400)] {
            let w = seeded(out_dim * in_dim, 5);
            let x = Tensor::from_vec(seeded(rows * in_dim, 6), (rows, in_dim), &Device::Cpu)?;
            let bias = Tensor::from_vec(seeded(out_dim, 7), out_dim, &Device::Cpu)?;
            for (choice, _) in Choice::available() {
                let matrix =
                    Int8Matrix::quantize_with(choice, &w, out_dim, in_dim)?.with_bias(&bias)?;
                let after = crate::kernels::gelu_erf(&matrix.matmul(&x)?)?;
                let fused = matrix.matmul_then(&x, Activation::GeluErf)?;
                let diff = crate::testing::max_diff(&fused, &after);
                assert!(diff < 1e-5, "{choice:?} {rows}x{in_dim}x{out_dim}: {diff}");
            }
        }
        Ok(())
    }

    #[test]
    fn zero_rows_and_bad_shapes() -> Result<()> {
        let w = Tensor::zeros((4, 8), candle_core::DType::F32, &Device::Cpu)?;
        let q = Int8Matrix::from_tensor(&w)?;
        let x = Tensor::ones((2, 8), candle_core::DType::F32, &Device::Cpu)?;
        assert_eq!(q.matmul(&x)?.sum_all()?.to_scalar::<f32>()?, 0.0);
        let bad = Tensor::ones((2, 7), candle_core::DType::F32, &Device::Cpu)?;
        assert!(q.matmul(&bad).is_err());
        assert!(Int8Matrix::quantize(&[0.0; 5], 2, 3).is_err());
        assert!(Int8Matrix::quantize(&[], 2, 0).is_err());
        Ok(())
    }

    #[test]
    fn the_worst_case_does_not_overflow() -> Result<()> {
        // Every product at its maximum, every lane summing k/4 of them.
        let k = MAX_INNER;
        let w = Tensor::ones((4, k), candle_core::DType::F32, &Device::Cpu)?;
        let x = Tensor::ones((1, k), candle_core::DType::F32, &Device::Cpu)?;
        let y = Int8Matrix::from_tensor(&w)?.matmul(&x)?.to_vec2::<f32>()?;
        for v in &y[0] {
            assert!((v - k as f32).abs() < 1e-3 * k as f32, "{v}");
        }
        Ok(())
    }
}
