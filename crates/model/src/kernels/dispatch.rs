//! The one place that decides where an op runs: our CPU kernel (f32 on the CPU), our CUDA kernel
//! (f32 on a CUDA device with the kernels switched on, [`super::cuda`]), or candle's composed ops
//! (everything else: half precision, other devices). Each op asks once, at its entry point, and
//! the layers above never ask.
use candle_core::{CpuStorage, DType, Layout, Result, Tensor};

/// Whether the CPU kernels apply: every tensor f32 on the CPU.
pub(crate) fn cpu_applies(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// Whether the CUDA kernels of the ops that have them apply: every tensor f32 on a CUDA device,
/// and the kernels switched on.
pub(crate) fn cuda_applies(tensors: &[&Tensor]) -> bool {
    #[cfg(feature = "cuda")]
    return super::cuda::applies(tensors);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = tensors;
        false
    }
}

/// Whether an op with both CPU and CUDA kernels runs as one op rather than composed.
pub(crate) fn kernel_applies(tensors: &[&Tensor]) -> bool {
    cpu_applies(tensors) || cuda_applies(tensors)
}

/// The values of a contiguous f32 CPU tensor (the ops make their inputs contiguous).
pub(crate) fn f32_slice<'a>(
    name: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{name}: expected f32 storage")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{name}: expected a contiguous input")
    };
    Ok(&data[start..end])
}
