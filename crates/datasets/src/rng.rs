//! Seeded, portable randomness: every order in this crate comes from here.
//!
//! The generator is PCG-64 (`rand_pcg::Pcg64`, O'Neill 2014) seeded with
//! `SeedableRng::seed_from_u64`, both value-stable across platforms and releases. Uniform
//! integers and shuffles are written here on top of `next_u64` (rejection sampling, Fisher–Yates)
//! rather than taken from `rand`'s distributions, whose outputs may change between `rand`
//! versions: the same seed gives the same batches and the same formal-language samples forever.

use rand::{Rng, SeedableRng};
pub use rand_pcg::Pcg64;

/// A PCG-64 generator from a seed.
pub fn seeded_rng(seed: u64) -> Pcg64 {
    Pcg64::seed_from_u64(seed)
}

/// The generator for one epoch of a run: a fixed function of (seed, epoch), so each epoch has its
/// own order and any epoch can be replayed alone.
pub fn epoch_rng(seed: u64, epoch: u64) -> Pcg64 {
    seeded_rng(splitmix64(seed ^ splitmix64(epoch)))
}

/// SplitMix64's output function (Steele, Lea & Flood 2014): a bijective 64-bit mixer.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether (and how) an epoch's order is shuffled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// Stream order (evaluation).
    Sequential,
    /// Shuffled by [`epoch_rng`]`(seed, epoch)`.
    Shuffled { seed: u64, epoch: u64 },
}

impl Order {
    /// The generator of a shuffled order, `None` for sequential.
    pub fn rng(self) -> Option<Pcg64> {
        match self {
            Order::Sequential => None,
            Order::Shuffled { seed, epoch } => Some(epoch_rng(seed, epoch)),
        }
    }
}

/// A uniform integer in `0..n` (`n > 0`), by rejection sampling on 64-bit words (no modulo bias).
/// Returns 0 when `n == 0`, so callers never panic on an empty range.
pub fn below<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let n = n as u64;
    // Accept x < 2⁶⁴ − (2⁶⁴ mod n), the largest multiple of n: then x mod n is uniform.
    let rem = (u64::MAX % n + 1) % n;
    let zone = u64::MAX - rem;
    loop {
        let x = rng.next_u64();
        if x <= zone {
            return (x % n) as usize;
        }
    }
}

/// A uniform integer in `lo..=hi` (`lo <= hi`; returns `lo` otherwise).
pub fn between<R: Rng + ?Sized>(rng: &mut R, lo: usize, hi: usize) -> usize {
    if hi <= lo { lo } else { lo + below(rng, hi - lo + 1) }
}

/// A fair coin.
pub fn coin<R: Rng + ?Sized>(rng: &mut R) -> bool {
    rng.next_u64() >> 63 == 1
}

/// Shuffles in place (Fisher–Yates, Durstenfeld's form).
pub fn shuffle<T, R: Rng + ?Sized>(rng: &mut R, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i + 1);
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = seeded_rng(7);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = seeded_rng(7);
        let b: Vec<u64> = (0..8).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        let mut r = seeded_rng(8);
        assert_ne!(a[0], r.next_u64());
    }

    #[test]
    fn below_is_in_range_and_hits_every_value() {
        let mut rng = seeded_rng(1);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[below(&mut rng, 7)] += 1;
        }
        // Each value expects 1000 hits; 5 standard deviations is about 150.
        assert!(seen.iter().all(|&c| (850..1150).contains(&c)), "{seen:?}");
        assert_eq!(below(&mut rng, 0), 0);
        assert_eq!(below(&mut rng, 1), 0);
        for _ in 0..100 {
            assert!((3..=5).contains(&between(&mut rng, 3, 5)));
        }
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut rng = seeded_rng(3);
        let mut v: Vec<usize> = (0..100).collect();
        shuffle(&mut rng, &mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }
}
