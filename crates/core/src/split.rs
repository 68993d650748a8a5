//! Train/dev/test assignment by item.
//!
//! Design choice: the split must be reproducible on every platform and in every language that wants
//! to check it, so it uses a hand-written SplitMix64 generator (no `rand` dependency whose stream
//! could change between versions) and an explicit Fisher–Yates shuffle: for `i` from `n - 1` down to
//! 1, swap index `i` with index `j = (next_u64() * (i + 1)) >> 64` (128-bit multiply). The first
//! `floor(test_fraction * n)` shuffled items are Test, the next `floor(dev_fraction_of_train *
//! remaining)` are Dev and the rest Train. Fractions are clamped to `[0, 1]` (NaN counts as 0), so any
//! input gives a valid split.

/// Which part of the data an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Dev,
    Test,
}

/// SplitMix64 (Steele, Lea and Flood 2014), the standard seeding generator: tiny, fast and with a
/// fixed output stream.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`), by 128-bit multiply-shift.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }
}

fn clamp_fraction(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// The split of each of `n_items` items (indexed like the items).
pub fn assign_splits(
    n_items: usize,
    seed: u64,
    test_fraction: f64,
    dev_fraction_of_train: f64,
) -> Vec<Split> {
    let mut order: Vec<usize> = (0..n_items).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n_items).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let n_test = ((clamp_fraction(test_fraction) * n_items as f64).floor() as usize).min(n_items);
    let rest = n_items - n_test;
    let n_dev = ((clamp_fraction(dev_fraction_of_train) * rest as f64).floor() as usize).min(rest);
    let mut splits = vec![Split::Train; n_items];
    for (pos, &item) in order.iter().enumerate() {
        if pos < n_test {
            splits[item] = Split::Test;
        } else if pos < n_test + n_dev {
            splits[item] = Split::Dev;
        }
    }
    splits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(s: &[Split], which: Split) -> usize {
        s.iter().filter(|&&x| x == which).count()
    }

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 1234567 from the reference C implementation (splitmix64.c).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    #[test]
    fn deterministic_with_exact_fractions() {
        let a = assign_splits(12491, 42, 0.3, 0.1);
        assert_eq!(a, assign_splits(12491, 42, 0.3, 0.1));
        assert_ne!(a, assign_splits(12491, 43, 0.3, 0.1));
        assert_eq!(count(&a, Split::Test), 3747); // floor(0.3 * 12491)
        assert_eq!(count(&a, Split::Dev), 874); // floor(0.1 * 8744)
        assert_eq!(count(&a, Split::Train), 12491 - 3747 - 874);
        // the test part is spread over the catalog, not a block
        assert!(a[..100].contains(&Split::Test) && a[..100].contains(&Split::Train));
    }

    #[test]
    fn edge_cases() {
        assert!(assign_splits(0, 1, 0.3, 0.1).is_empty());
        assert_eq!(assign_splits(1, 1, 0.3, 0.1), [Split::Train]);
        assert!(assign_splits(10, 1, 1.0, 0.5)
            .iter()
            .all(|&s| s == Split::Test));
        assert!(assign_splits(10, 1, f64::NAN, -3.0)
            .iter()
            .all(|&s| s == Split::Train));
        assert_eq!(count(&assign_splits(10, 1, 7.0, 0.0), Split::Test), 10);
        assert_eq!(serde_json::to_string(&Split::Dev).unwrap(), "\"dev\"");
    }
}
