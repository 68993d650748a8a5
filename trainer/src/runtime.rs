//! Process-wide settings for CPU work, applied first thing in `main`, before any thread exists
//! that could read the environment or allocate.

/// The allocator. Every training step allocates and frees the same large activation and gradient
/// buffers (candle allocates each operation's output). glibc's malloc maps big blocks afresh
/// (even with its thresholds raised, as this binary used to do), and mimalloc by default returns
/// freed memory to the kernel after a delay; either way each step faults some of its buffers in
/// and zeroes them again. Measured over 30 NER steps at batch 16 x 48 (`perf stat -e page-faults`): glibc
/// with raised thresholds 977 thousand faults, mimalloc 114 thousand, mimalloc never purging 987.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its position in `mi_option_e` (mimalloc.h, v2 and v3).
const MIMALLOC_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

pub fn configure() {
    keep_freed_memory();
    count_threads_once();
    no_spinning_element_wise_pool();
}

/// Freed memory stays with the process for reuse (the peak is kept, as a training run reaches it
/// every step anyway).
fn keep_freed_memory() {
    // SAFETY: sets one of mimalloc's options, which are atomics read when memory is freed.
    unsafe { libmimalloc_sys::mi_option_set(MIMALLOC_PURGE_DELAY, -1) }
}

/// candle asks for its thread count on every CPU matmul, and without `RAYON_NUM_THREADS` it
/// recounts the physical cores by parsing /proc/cpuinfo each time (`num_cpus::get_physical`).
/// Tagging one title at a time ran 40% faster with the variable set. We set it to candle's own
/// default, counted once; rayon's global pool (our fused CPU kernels) then takes the same count,
/// physical cores, where on its own it would take logical ones.
fn count_threads_once() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// candle 0.11 runs element-wise operations on a thread pool of its own beside rayon's (which runs
/// gemm and our kernels), and after each operation its workers spin about 25,000 times before
/// sleeping. Between the many small operations of a training step they hardly sleep: on 2 cores,
/// 11% of all CPU samples of a training step were that spin, taken from the GEMM on the other
/// core. One thread (`CANDLE_NUM_THREADS=1`) means no pool: those operations, a small share of the
/// step, run on the calling thread. An explicit setting is kept.
fn no_spinning_element_wise_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_option_is_the_one_set() {
        // The option's position is mimalloc's; a wrong one would set some other option.
        // SAFETY: reads and writes mimalloc options (atomics).
        unsafe {
            let before = libmimalloc_sys::mi_option_get(MIMALLOC_PURGE_DELAY);
            assert_eq!(before, 1000, "mimalloc's default purge delay is 1000 ms");
            keep_freed_memory();
            assert_eq!(libmimalloc_sys::mi_option_get(MIMALLOC_PURGE_DELAY), -1);
        }
    }
}
