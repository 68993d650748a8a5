//! The CUDA kernels' arithmetic checked without a GPU: `check.cpp` runs every kernel of
//! `kernels.cu` on the host (through the emulated built-ins of `shim.h`) against double-precision
//! loops and their central differences, and prints the dropout masks it draws, compared here with
//! the CPU kernels' streams. Needs a C++20 compiler (`$CXX`, else `c++`).
use std::path::Path;
use std::process::Command;

use crate::kernels::DropoutDraw;

#[test]
fn cuda_kernels_compute_on_the_host_what_the_cpu_kernels_do() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kernels/cuda/host");
    let exe = std::env::temp_dir().join(format!("multitag-cuda-check-{}", std::process::id()));
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    let built = Command::new(&compiler)
        .args(["-std=c++20", "-O1", "-pthread", "-o"])
        .arg(&exe)
        .arg(here.join("check.cpp"))
        .output()
        .unwrap_or_else(|e| panic!("{compiler}: {e} (a C++20 compiler is needed)"));
    assert!(
        built.status.success(),
        "{compiler} failed on check.cpp:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new(&exe).output().expect("the check runs");
    let _ = std::fs::remove_file(&exe);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "kernel mismatches:\n{stdout}");

    // check.cpp draws with seed 7 and p = 0.1, rows 0 to 2, 12 elements each.
    let draw = DropoutDraw { p: 0.1, seed: 7 };
    let mut rows = 0;
    for line in stdout.lines().filter(|l| l.starts_with("mask ")) {
        let (row, values) = line["mask ".len()..]
            .split_once(':')
            .expect("mask R: values");
        let row: u64 = row.parse().expect("a row number");
        let kernel: Vec<f32> = values
            .split_whitespace()
            .map(|v| v.parse().expect("a mask value"))
            .collect();
        let cpu = draw.keep_mask(row, kernel.len());
        assert_eq!(kernel.len(), 12);
        for (k, c) in kernel.iter().zip(&cpu) {
            assert!(
                (k - c).abs() < 1e-6,
                "row {row}: kernel {kernel:?}, CPU {cpu:?}"
            );
        }
        rows += 1;
    }
    assert_eq!(rows, 3, "three mask rows in:\n{stdout}");
}
