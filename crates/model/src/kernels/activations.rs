//! GELU with the exact (erf) form that BERT checkpoints use, fast on CPU and in WASM.
//!
//! candle's CPU `gelu_erf` calls libm's scalar `erf` per element, which took about a tenth of a
//! tagging run's time natively (and more of a training step's). Here erf is a rational polynomial
//! on [-4, 4] (erf is ±1 to f32 precision beyond), branch-free, so the compiler vectorizes the
//! loop for AVX and WASM simd128 alike. The backward pass is a second op of the same kind. On CUDA
//! both have kernels (`kernels::cuda`, where switched on); other devices and dtypes keep candle's
//! implementation.
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::dispatch::{f32_slice, kernel_applies};

/// `x * Φ(x)`, Φ the standard normal CDF.
pub fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    if kernel_applies(&[xs]) {
        xs.contiguous()?.apply_op1(GeluErf)
    } else {
        xs.gelu_erf()
    }
}

/// erf(x) for f32 within about 1e-6 absolute: the odd degree-13 over even degree-8 rational
/// approximation on [-4, 4] that Eigen and XLA use for f32.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    const Q: [f32; 5] = [
        -1.456_607_2e-5,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329_2e-3,
        -1.426_474e-2,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = P.iter().fold(0.0, |acc, &c| acc * x2 + c) * x;
    let q = Q.iter().fold(0.0, |acc, &c| acc * x2 + c);
    p / q
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

/// d/dx x Φ(x) = Φ(x) + x φ(x).
#[inline(always)]
fn gelu_derivative(x: f32) -> f32 {
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    0.5 * (1.0 + erf(x * FRAC_1_SQRT_2)) + x * FRAC_1_SQRT_2PI * super::math::exp(-0.5 * x * x)
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Applies `f` to a contiguous f32 CPU tensor (callers make their input contiguous), in parallel.
fn map_f32(
    name: &str,
    storage: &CpuStorage,
    layout: &Layout,
    f: impl Fn(f32) -> f32 + Sync,
) -> Result<(CpuStorage, Shape)> {
    let x = f32_slice(name, storage, layout)?;
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(out, x)| apply(out, x, &f));
    Ok((CpuStorage::F32(out), layout.shape().clone()))
}

/// GELU (erf form) of every value, in place: for a product that is not a tensor yet (the int8
/// matmul's output), so no second buffer is allocated and zeroed.
pub(crate) fn gelu_erf_in_place(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(|chunk| {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { in_place_avx512(chunk, &gelu) };
        }
        chunk.iter_mut().for_each(|v| *v = gelu(*v));
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn in_place_avx512(values: &mut [f32], f: &impl Fn(f32) -> f32) {
    values.iter_mut().for_each(|v| *v = f(*v));
}

/// `out[i] = f(x[i])`, compiled for the widest vectors this CPU has: the crate is built for
/// baseline x86-64 (4 floats a vector, no fused multiply-add), and GELU's rational polynomial is
/// nothing but multiply-adds.
fn apply(out: &mut [f32], x: &[f32], f: &impl Fn(f32) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { apply_avx512(out, x, f) };
    }
    apply_portable(out, x, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn apply_avx512(out: &mut [f32], x: &[f32], f: &impl Fn(f32) -> f32) {
    apply_portable(out, x, f)
}

#[inline(always)]
fn apply_portable(out: &mut [f32], x: &[f32], f: &impl Fn(f32) -> f32) {
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
}

/// `out[i] = f(x[i], y[i])`, compiled as [`apply`] is.
fn apply2(out: &mut [f32], x: &[f32], y: &[f32], f: &impl Fn(f32, f32) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { apply2_avx512(out, x, y, f) };
    }
    apply2_portable(out, x, y, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn apply2_avx512(out: &mut [f32], x: &[f32], y: &[f32], f: &impl Fn(f32, f32) -> f32) {
    apply2_portable(out, x, y, f)
}

#[inline(always)]
fn apply2_portable(out: &mut [f32], x: &[f32], y: &[f32], f: &impl Fn(f32, f32) -> f32) {
    out.iter_mut()
        .zip(x.iter().zip(y))
        .for_each(|(o, (&a, &b))| *o = f(a, b));
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-fast"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_f32(self.name(), storage, layout, gelu)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let x = super::cuda::view(self.name(), storage, layout)?;
        let out = super::cuda::elementwise(&storage.device, "gelu_erf_fwd", &[&x])?;
        let out = candle_core::CudaStorage::wrap_cuda_slice(out, storage.device.clone());
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &GeluErfGrad)?;
        Ok(Some(grad))
    }
}

/// `(x, grad_y)` -> `grad_y * gelu'(x)` in one pass (a separate derivative tensor and multiply
/// would be two passes and an allocation the size of the FFN's widest activations).
struct GeluErfGrad;

impl CustomOp2 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(self.name(), x, x_layout)?;
        let grad = f32_slice(self.name(), grad, grad_layout)?;
        if grad.len() != x.len() {
            candle_core::bail!("{}: mismatched shapes", self.name())
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
            .for_each(|(out, (x, grad))| apply2(out, x, grad, &|x, g| gelu_derivative(x) * g));
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        x_layout: &Layout,
        grad: &candle_core::CudaStorage,
        grad_layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let xv = super::cuda::view(self.name(), x, x_layout)?;
        let grad = super::cuda::view(self.name(), grad, grad_layout)?;
        if grad.len() != xv.len() {
            candle_core::bail!("{}: mismatched shapes", self.name())
        }
        let out = super::cuda::elementwise(&x.device, "gelu_erf_bwd", &[&xv, &grad])?;
        let out = candle_core::CudaStorage::wrap_cuda_slice(out, x.device.clone());
        Ok((out, x_layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn libm_erf(x: f64) -> f64 {
        // Reference through candle's own (libm) gelu_erf: gelu(x) = x/2 (1 + erf(x/√2)).
        let t = Tensor::new(&[x], &Device::Cpu).unwrap();
        let g = t.gelu_erf().unwrap().to_vec1::<f64>().unwrap()[0];
        if x == 0.0 {
            0.0
        } else {
            (2.0 * g / x - 1.0).clamp(-1.0, 1.0)
        }
    }

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let z = i as f64 / 1000.0;
            let err = (erf(z as f32) as f64 - libm_erf(z * std::f64::consts::SQRT_2)).abs();
            worst = worst.max(err);
        }
        // Above x = 4 (here z√2 covers ±8.5) erf is 1 to within 2e-8.
        assert!(worst < 2e-6, "max |erf error| {worst}");
    }

    #[test]
    fn forward_and_gradient_match_candle() -> Result<()> {
        let values: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.15).collect();
        let x = Var::new(values.as_slice(), &Device::Cpu)?;
        let ours = gelu_erf(x.as_tensor())?;
        let theirs = x.as_tensor().gelu_erf()?;
        let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "forward {diff}");

        // Uneven weights, so the output's gradient is not all ones.
        let weights: Vec<f32> = (0..values.len()).map(|i| (i as f32 * 0.7).sin()).collect();
        let weights = Tensor::new(weights.as_slice(), &Device::Cpu)?;
        let ours_grad = (ours * &weights)?.sum_all()?.backward()?;
        let theirs_grad = (theirs * &weights)?.sum_all()?.backward()?;
        let a = ours_grad.get(&x).expect("gradient");
        let b = theirs_grad.get(&x).expect("gradient");
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "gradient {diff}");
        Ok(())
    }

    #[test]
    fn strided_input_is_handled() -> Result<()> {
        let x = Tensor::arange(0f32, 12., &Device::Cpu)?
            .reshape((3, 4))?
            .affine(0.5, -3.0)?;
        let t = x.t()?;
        let diff = (gelu_erf(&t)? - t.gelu_erf()?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }
}
