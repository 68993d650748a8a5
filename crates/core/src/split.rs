//! Train/dev/test assignment by item.
//!
//! Design choice: an item's split depends on the item alone, its id, and the seed, never on its
//! neighbours: a row skipped, added or moved in the catalog moves no other item between splits
//! (the assignment it replaced shuffled positions, so one skipped row moved about a third of the
//! items). The rule is written so that any language can check it: take the 64-bit FNV-1a hash of
//! the id's UTF-8 bytes, xor the seed, and draw one number from SplitMix64 (below) seeded with
//! that; `u = next_u64() / 2^64`. The item is Test when `u < test_fraction`, Dev when `u <
//! test_fraction + (1 - test_fraction) * dev_fraction_of_train`, and Train otherwise. Fractions are
//! clamped to `[0, 1]` (NaN counts as 0), so any input gives a valid split; the split sizes are
//! those fractions up to sampling noise (for 12,491 items, a standard deviation of about 51 test
//! items at 30%).

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

/// 64-bit FNV-1a (Fowler, Noll, Vo): a fixed, documented hash, unlike `std`'s, which may change
/// between Rust versions.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The split of the item with id `id` (see the module doc for the rule).
pub fn split_of(id: &str, seed: u64, test_fraction: f64, dev_fraction_of_train: f64) -> Split {
    let u = SplitMix64::new(fnv1a64(id.as_bytes()) ^ seed).next_u64() as f64 / 2f64.powi(64);
    let test = clamp_fraction(test_fraction);
    if u < test {
        Split::Test
    } else if u < test + (1.0 - test) * clamp_fraction(dev_fraction_of_train) {
        Split::Dev
    } else {
        Split::Train
    }
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
    fn fnv1a_reference_values() {
        // From the FNV reference test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    fn splits(ids: &[String], seed: u64) -> Vec<Split> {
        ids.iter().map(|id| split_of(id, seed, 0.3, 0.1)).collect()
    }

    #[test]
    fn an_items_split_depends_on_its_id_not_its_neighbours() {
        let ids: Vec<String> = (0..12491)
            .map(|i| (10_000_000 + 7 * i).to_string())
            .collect();
        let a = splits(&ids, 42);
        assert_ne!(a, splits(&ids, 43));
        // Fractions up to sampling noise (4 standard deviations).
        let n = ids.len() as f64;
        let near =
            |count: usize, p: f64| (count as f64 - n * p).abs() < 4.0 * (n * p * (1.0 - p)).sqrt();
        assert!(
            near(count(&a, Split::Test), 0.3),
            "{}",
            count(&a, Split::Test)
        );
        assert!(
            near(count(&a, Split::Dev), 0.07),
            "{}",
            count(&a, Split::Dev)
        );
        // Dropping a row, or reversing the file, moves nobody else.
        let dropped: Vec<String> = ids[1..].to_vec();
        assert_eq!(splits(&dropped, 42), a[1..]);
        let mut reversed = ids.clone();
        reversed.reverse();
        let mut back = splits(&reversed, 42);
        back.reverse();
        assert_eq!(back, a);
    }

    #[test]
    fn edge_cases() {
        assert!(["1", "2", "x", ""]
            .iter()
            .all(|id| split_of(id, 1, 1.0, 0.5) == Split::Test));
        assert!(["1", "2", "x", ""]
            .iter()
            .all(|id| split_of(id, 1, f64::NAN, -3.0) == Split::Train));
        assert!(["1", "2", "x", ""]
            .iter()
            .all(|id| split_of(id, 1, 0.0, 1.0) == Split::Dev));
        assert_eq!(serde_json::to_string(&Split::Dev).unwrap(), "\"dev\"");
    }
}
