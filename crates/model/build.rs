//! With the `cuda` feature, compiles the training kernels (src/kernels/cuda/kernels.cu) to PTX with nvcc,
//! for the compute capability in CUDA_COMPUTE_CAP (as candle's kernels read it; 80 if unset). The
//! driver compiles the PTX for the GPU it runs on.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=src/kernels/cuda/kernels.cu");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("kernels.ptx");
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".to_string());
    let status = Command::new("nvcc")
        .args(["--ptx", "-O3", &format!("-arch=compute_{cap}"), "-o"])
        .arg(&out)
        .arg("src/kernels/cuda/kernels.cu")
        .status()
        .unwrap_or_else(|e| {
            panic!("nvcc: {e} (the cuda feature needs nvcc on PATH: see ../shared/tools/cuda-toolchain.sh)")
        });
    assert!(
        status.success(),
        "nvcc failed on src/kernels/cuda/kernels.cu"
    );
}
