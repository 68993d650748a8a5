//! Intel AMX (Sapphire Rapids and later): `tdpbusd` multiplies a tile of 16 input rows by 64
//! unsigned bytes with a tile of 64 signed weights by 16 columns into 16 x 16 i32 sums, 16,384
//! multiply-adds in one instruction (VNNI's `vpdpbusd` does 64). A weight tile is 16 rows of 64
//! bytes, each the 4 weights of a group for 16 columns: the packed layout of a column block, so
//! a block's 16 consecutive groups load as one tile.
//!
//! Tiles: `tmm0..tmm3` sum a 32 x 32 corner of the output (two row tiles by two column blocks),
//! `tmm4`, `tmm5` hold two row tiles' inputs and `tmm6`, `tmm7` two blocks' weights, so each tile
//! loaded feeds two products. Every tile is 16 rows of 64 bytes; the inputs are padded to whole
//! row tiles (zero rows), the weights to whole tiles of groups and to an even number of blocks
//! (zeros), and only real rows and columns are stored.
//!
//! Written in inline assembly because Rust's AMX intrinsics are unstable (`x86_amx_intrinsics`).
//! A call configures the tiles of its thread, runs, and releases them; the compiler never uses
//! tile registers itself, so nothing between the `asm!` blocks of one call touches them.
use std::arch::asm;
use std::arch::x86_64::*;

use super::vnni::BlockFactors;
use super::{Columns, OutputRows, PackedWeights, QuantizedRows, BLOCK, GROUP};

/// Input rows in a tile.
pub(super) const TILE_ROWS: usize = 16;
/// Groups of 4 inputs in a tile (64 bytes a row).
pub(super) const TILE_GROUPS: usize = 16;
/// Input rows a pass covers: two row tiles.
pub(super) const ROWS_PER_PASS: usize = 2 * TILE_ROWS;

/// The `ldtilecfg` operand, palette 1: bytes per row and rows of each of the 16 tile registers.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

/// Whether the operating system lets this process use the tile registers: on Linux a process
/// asks once (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), else `tileloadd` faults.
pub(super) fn os_allows() -> bool {
    #[cfg(target_os = "linux")]
    {
        static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ALLOWED.get_or_init(|| {
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: a plain system call; it only changes what this process may execute.
            unsafe {
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                ) == 0
            }
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Whether the CPU has AMX tiles and their int8 products (CPUID leaf 7: EDX bits 24 and 25).
pub(super) fn cpu_has() -> bool {
    // A leaf beyond the CPU's maximum reads as another leaf's values, never as a fault; every CPU
    // with AVX-512 VNNI (checked first) has leaf 7.
    let leaf = __cpuid_count(7, 0);
    leaf.edx & (1 << 24) != 0 && leaf.edx & (1 << 25) != 0
}

/// Every input row against the column blocks `blocks`, 32 rows by two blocks at a time.
///
/// # Safety
/// The CPU runs AMX and AVX-512 VNNI, the OS allows the tiles ([`os_allows`]), `w` was packed for
/// AMX (whole tiles of groups, an even number of blocks) and `x` quantized for it (rows padded to
/// [`ROWS_PER_PASS`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn blocks(
    w: &PackedWeights,
    x: &QuantizedRows,
    blocks: std::ops::Range<usize>,
    columns: &Columns,
    out: OutputRows,
) {
    debug_assert!(w.groups.is_multiple_of(TILE_GROUPS) && x.stride == w.groups * GROUP);
    debug_assert!(x.values.len() >= x.rows.next_multiple_of(ROWS_PER_PASS) * x.stride);
    let config = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        bytes_per_row: std::array::from_fn(|t| if t < 8 { 64 } else { 0 }),
        rows: std::array::from_fn(|t| if t < 8 { TILE_ROWS as u8 } else { 0 }),
    };
    // The four sum tiles, stored for the epilogue: 16 rows of 16 i32 each.
    #[repr(C, align(64))]
    struct Sums([[i32; TILE_ROWS * BLOCK]; 4]);
    let mut sums = Sums([[0; TILE_ROWS * BLOCK]; 4]);
    let k_steps = w.groups / TILE_GROUPS;
    let block_bytes = w.groups * BLOCK * GROUP;
    // SAFETY: the configuration is valid for palette 1 (the caller checked the CPU and the OS).
    unsafe { asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly)) };
    for b in blocks.clone().step_by(2) {
        // Block b + 1 may belong to the next task or be the padding block: its sums are computed
        // (from weights that exist) but only stored when it is this call's.
        let pair = [b, b + 1].map(|c| {
            // SAFETY: `c` is a real block of this call; the CPU runs AVX-512.
            (c < blocks.end).then(|| unsafe { BlockFactors::new(w, columns, c) })
        });
        // SAFETY: the weights hold an even number of blocks, so b + 1's exist.
        let weights = unsafe { w.weights.as_ptr().add(b * block_bytes) };
        for r in (0..x.rows).step_by(ROWS_PER_PASS) {
            // SAFETY: rows r..r + 32 lie in the padded inputs, and every load stays inside its
            // row tiles and the two blocks; the stores go to `sums`, 4 KB.
            unsafe {
                let inputs = x.values.as_ptr().add(r * x.stride);
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "2:",
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {s64}*1]",
                    "tileloadd tmm7, [{b1} + {s64}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tdpbusd tmm3, tmm5, tmm7",
                    "add {a0}, 64",
                    "add {a1}, 64",
                    "add {b0}, 1024",
                    "add {b1}, 1024",
                    "dec {k}",
                    "jnz 2b",
                    "tilestored [{c} + {s64}*1], tmm0",
                    "tilestored [{c} + {s64}*1 + 1024], tmm1",
                    "tilestored [{c} + {s64}*1 + 2048], tmm2",
                    "tilestored [{c} + {s64}*1 + 3072], tmm3",
                    a0 = inout(reg) inputs => _,
                    a1 = inout(reg) inputs.add(TILE_ROWS * x.stride) => _,
                    b0 = inout(reg) weights => _,
                    b1 = inout(reg) weights.add(block_bytes) => _,
                    k = inout(reg) k_steps => _,
                    sa = in(reg) x.stride,
                    s64 = in(reg) 64usize,
                    c = in(reg) sums.0.as_mut_ptr(),
                    options(nostack),
                );
            }
            for (t, tile) in sums.0.iter().enumerate() {
                let Some(factors) = &pair[t % 2] else {
                    continue;
                };
                let first = r + (t / 2) * TILE_ROWS;
                for i in 0..TILE_ROWS.min(x.rows.saturating_sub(first)) {
                    // SAFETY: row first + i is a real input row; `tile` holds 16 rows of 16 sums.
                    unsafe {
                        let sum = _mm512_loadu_si512(tile[i * BLOCK..].as_ptr().cast());
                        factors.store(x, first + i, sum, out);
                    }
                }
            }
        }
    }
    // SAFETY: gives the tile state back; the tiles are not used after this.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}
