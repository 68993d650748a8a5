//! Seeded dropout masks: a splitmix64 stream per draw, identical on every platform (WASM
//! included), so a CPU training run is reproducible for a seed. Kernels that draw in parallel give
//! each row (or sequence and head) its own stream and redraw it backward instead of keeping it.
use std::cell::Cell;

/// A splitmix64 stream: tiny, seedable, identical on every platform (WASM included).
pub struct DropoutRng {
    state: Cell<u64>,
}

impl DropoutRng {
    pub fn new(seed: u64) -> Self {
        Self {
            state: Cell::new(seed ^ 0x9E37_79B9_7F4A_7C15),
        }
    }

    /// Stream `index` of a family seeded by `seed`: kernels that draw masks in parallel give each
    /// task its own stream, so the masks do not depend on which thread ran what. Both are mixed
    /// first, as consecutive raw seeds would give overlapping splitmix streams.
    pub(crate) fn stream(seed: u64, index: u64) -> Self {
        Self::new(mix64(seed ^ mix64(index)))
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let s = self.state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.state.set(s);
        mix64(s)
    }

    /// A keep-mask already scaled by 1/(1-p).
    pub(crate) fn mask(&self, n: usize, p: f32) -> Vec<f32> {
        let mut out = vec![0f32; n];
        self.fill_mask(&mut out, p);
        out
    }

    /// [`Self::mask`] into `out`. Each u64 yields four 16-bit draws, which is ample resolution for
    /// a dropout probability and four times cheaper than one draw per element.
    fn fill_mask(&self, out: &mut [f32], p: f32) {
        let threshold = (p as f64 * 65536.0) as u64;
        let keep = 1.0 / (1.0 - p);
        for group in out.chunks_mut(4) {
            let r = self.next_u64();
            for (k, value) in group.iter_mut().enumerate() {
                let draw = (r >> (16 * k)) & 0xFFFF;
                *value = if draw < threshold { 0.0 } else { keep };
            }
        }
    }
}

/// One dropout draw for a fused kernel: probability `p`, masks drawn from `seed`, one stream per
/// index (a row, or a sequence and head), so a kernel can draw in parallel and redraw the same mask
/// in its backward pass instead of keeping it.
#[derive(Clone, Copy, Debug)]
pub struct DropoutDraw {
    pub p: f32,
    pub seed: u64,
}

impl DropoutDraw {
    /// A draw of probability `p` seeded from `rng`; none when `p` is 0.
    pub fn from_rng(rng: &DropoutRng, p: f32) -> Option<Self> {
        (p > 0.0).then(|| Self {
            p,
            seed: rng.next_u64(),
        })
    }

    /// The scaled keep-mask of `n` elements for `index`.
    pub(crate) fn keep_mask(&self, index: u64, n: usize) -> Vec<f32> {
        DropoutRng::stream(self.seed, index).mask(n, self.p)
    }

    /// [`Self::keep_mask`] into `out`.
    pub(crate) fn fill_keep_mask(&self, index: u64, out: &mut [f32]) {
        DropoutRng::stream(self.seed, index).fill_mask(out, self.p)
    }
}

/// splitmix64's output function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_mask_is_seeded_and_has_expected_rate() {
        let a = DropoutRng::new(7).mask(40_000, 0.1);
        let b = DropoutRng::new(7).mask(40_000, 0.1);
        assert_eq!(a, b);
        let dropped = a.iter().filter(|&&x| x == 0.0).count() as f64 / a.len() as f64;
        assert!((dropped - 0.1).abs() < 0.01, "{dropped}");
        assert_ne!(a, DropoutRng::new(8).mask(40_000, 0.1));
    }
}
