//! The data module's random numbers: SplitMix64, keyed by (seed, stream, epoch, position).
//!
//! Shuffling and augmentation use their own tiny generator instead of `rand::StdRng`, whose
//! algorithm `rand` reserves the right to change between versions. An epoch's order is part of
//! a training checkpoint's meaning: the same seed and epoch must give the same order with any
//! build, forever. Every random decision is drawn from a generator keyed by *what it is for*
//! (the epoch's shuffle, or the augmentation of the sample at position `p` of epoch `e`), never
//! from a generator shared across samples, so the numbers do not depend on batching, threads
//! or the order in which samples are prepared.
//!
//! **Stability:** changing any constant here changes every shuffled order and augmentation.

/// SplitMix64's increment: 2^64 / φ, odd (Steele, Lea & Flood, "Fast splittable pseudorandom
/// number generators", OOPSLA 2014; constants from Vigna's reference `splitmix64.c`).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Stream key for an epoch's shuffle.
pub(crate) const STREAM_SHUFFLE: u64 = 1;
/// Stream key for the augmentation of one sample.
pub(crate) const STREAM_AUGMENT: u64 = 2;

/// SplitMix64's output function (a 64-bit finaliser with good avalanche).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The SplitMix64 generator: state advances by [`GAMMA`], output is [`mix`] of the state.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`, exactly as the reference implementation.
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for one purpose, keyed by `seed` and the words naming the purpose
    /// (`[STREAM_SHUFFLE, epoch]`, `[STREAM_AUGMENT, epoch, position]`). Distinct keys give
    /// unrelated sequences.
    pub(crate) fn keyed(seed: u64, words: &[u64]) -> Self {
        let state = words
            .iter()
            .fold(mix(seed), |h, &w| mix(h ^ mix(w.wrapping_add(GAMMA))));
        Self::new(state)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// A uniform integer in `0..n`, without modulo bias (Lemire, "Fast random integer
    /// generation in an interval", 2019: multiply, and reject the few low products that
    /// would over-represent some results).
    ///
    /// # Panics
    /// If `n == 0`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SplitMix64::below(0)");
        let mut product = u128::from(self.next_u64()) * u128::from(n);
        if (product as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (product as u64) < threshold {
                product = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (product >> 64) as u64
    }

    /// Shuffles `items` uniformly in place (Fisher–Yates, from the last position down).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_splitmix64() {
        // Vigna's splitmix64.c seeded with 0 starts 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4,
        // 0x06c45d188009454f (widely published test vector).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [0usize; 5];
        for _ in 0..1000 {
            seen[rng.below(5) as usize] += 1;
        }
        // 1000 draws over 5 values: each expected 200, σ ≈ 12.6; 150..250 is ±4σ.
        assert!(seen.iter().all(|&c| (150..250).contains(&c)), "{seen:?}");
    }

    #[test]
    fn keyed_streams_differ() {
        let a = SplitMix64::keyed(1, &[STREAM_SHUFFLE, 0]).next_u64();
        let b = SplitMix64::keyed(1, &[STREAM_SHUFFLE, 1]).next_u64();
        let c = SplitMix64::keyed(2, &[STREAM_SHUFFLE, 0]).next_u64();
        assert!(a != b && a != c && b != c);
    }
}
