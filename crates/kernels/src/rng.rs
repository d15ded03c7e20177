//! Ventral's one home for seeded randomness: the generators, how a seed becomes the stream for
//! one purpose, and the few draws built on them (uniform integers, shuffles, unit floats).
//!
//! Ventral promises "same seed, same bits", with any build and any thread count, so it does not
//! use `rand::StdRng` (whose algorithm `rand` may change between versions) and every stream is
//! a pure function of the run's seed and of *what the numbers are for*:
//!
//! | use | derivation | generator |
//! |---|---|---|
//! | tensor `n` of a model (weights, from 1) | [`child_seed`]`(model seed, n)` | [`Xoshiro256PlusPlus`] |
//! | training call `c` of a dropout layer (from 0) | [`child_seed`]`(layer seed, c + 1)` | dropout kernel |
//! | element `i` of a dropout mask | [`SplitMix64::output_at`]`(mask seed, i)` | counter-based |
//! | epoch `e`'s shuffle | [`SplitMix64::stream`]`(seed, Purpose::Shuffle, &[e])` | [`SplitMix64`] |
//! | sample at position `p` of epoch `e` | [`SplitMix64::stream`]`(seed, Purpose::Augment, &[e, p])` | [`SplitMix64`] |
//! | loading that sample (an image folder's random resized crop) | [`SplitMix64::stream`]`(seed, Purpose::Augment, &[e, p, 1])` | [`SplitMix64`] |
//! | a validation set held out of a training folder | [`SplitMix64::stream`]`(seed, Purpose::Split, &[])` | [`SplitMix64`] |
//!
//! Keying a stream by its purpose and position instead of drawing from one shared generator
//! makes the numbers independent of batching, threads, the order samples are prepared in, and
//! the number of processes: in a data-parallel run every rank derives the same shuffle and the
//! same initial weights, and the augmentation of a sample depends on its global position, not
//! on the rank that loads it. A purpose whose draws should differ between ranks puts the rank
//! among the words (`stream(seed, purpose, &[rank, …])`).
//!
//! **Stability:** changing any constant or derivation here changes initial weights, dropout
//! masks, shuffled orders and augmentations, and so what a training checkpoint means.

/// SplitMix64's increment: 2^64 / φ, odd (Steele, Lea & Flood, "Fast splittable pseudorandom
/// number generators", OOPSLA 2014; constants from Vigna's reference `splitmix64.c`).
pub const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijective 64-bit finaliser with good avalanche, so
/// consecutive or structured inputs give unrelated outputs.
#[inline(always)]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of child `index` of `seed`: `mix(seed ^ index · γ)`. Hands one seed per tensor
/// to a model's initialiser (`index` counts tensors from 1) and one per training call to a
/// dropout layer (`index` = call + 1), so each draws from its own stream.
#[inline]
pub fn child_seed(seed: u64, index: u64) -> u64 {
    mix(seed ^ index.wrapping_mul(GAMMA))
}

/// What a keyed stream is for. Streams of different purposes are unrelated even when drawn
/// from the same seed with the same words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// The order of an epoch (the data loader, the classic learners, demos); words: the epoch.
    Shuffle,
    /// The augmentation of one sample; words: the epoch and the sample's position in it.
    Augment,
    /// A random division of a dataset into parts (a validation set held out of a training
    /// folder); words: none.
    Split,
}

impl Purpose {
    /// The word that names this purpose in a stream's key (1 and 2: the keys the data
    /// loader has always used, so shuffles and augmentations are those of earlier versions).
    pub fn key(self) -> u64 {
        match self {
            Purpose::Shuffle => 1,
            Purpose::Augment => 2,
            Purpose::Split => 3,
        }
    }
}

/// The SplitMix64 generator: the state advances by [`GAMMA`] and each output is [`mix`] of it.
///
/// Small, fast and splittable; output `i` can be computed without the ones before it
/// ([`SplitMix64::output_at`]), which is what lets a dropout mask be filled by any number of
/// threads with the same bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`, exactly as Vigna's reference implementation.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The generator for one purpose: keyed by `seed`, the purpose and the `words` that tell
    /// its streams apart (an epoch, a sample position, a rank). Distinct keys give unrelated
    /// sequences.
    pub fn stream(seed: u64, purpose: Purpose, words: &[u64]) -> Self {
        let absorb = |h: u64, w: u64| mix(h ^ mix(w.wrapping_add(GAMMA)));
        let state = words
            .iter()
            .fold(absorb(mix(seed), purpose.key()), |h, &w| absorb(h, w));
        Self::new(state)
    }

    /// Output `i` (from 0) of the generator started from `seed`, computed directly as
    /// `mix(seed + (i + 1) · γ)`.
    #[inline(always)]
    pub fn output_at(seed: u64, i: u64) -> u64 {
        mix(seed.wrapping_add(i.wrapping_add(1).wrapping_mul(GAMMA)))
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// A uniform `f64` in `[0, 1)`: the top 53 bits of [`SplitMix64::next_u64`] times 2⁻⁵³
    /// (the scales and ratios of a random resized crop, colour jitter factors).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..n`, without modulo bias (Lemire, "Fast random integer
    /// generation in an interval", 2019: multiply, and reject the few low products that
    /// would over-represent some results).
    ///
    /// # Panics
    /// If `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
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
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A uniformly random permutation of `0..n` ([`SplitMix64::shuffle`] of the identity).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        self.shuffle(&mut order);
        order
    }
}

/// The xoshiro256++ generator (Blackman & Vigna, "Scrambled linear pseudorandom number
/// generators", 2021), for long runs of draws such as a tensor's initial values: a 256-bit
/// state, so its period dwarfs any tensor.
///
/// [`Xoshiro256PlusPlus::seed_from_u64`] and [`Xoshiro256PlusPlus::next_f64`] are bit for bit
/// those of `rand` 0.10 (`seed_from_u64`, `random::<f64>()`), which initialised Ventral's
/// tensors before this module existed; a test holds them to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xoshiro256PlusPlus {
    s: [u64; 4],
}

impl Xoshiro256PlusPlus {
    /// The state filled with the first four outputs of [`SplitMix64::new`]`(seed)`, as the
    /// authors recommend (never all zero, since SplitMix64 is a bijection of a non-constant
    /// counter).
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut init = SplitMix64::new(seed);
        Self {
            s: [
                init.next_u64(),
                init.next_u64(),
                init.next_u64(),
                init.next_u64(),
            ],
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform `f64` in `[0, 1)`: the top 53 bits of [`Xoshiro256PlusPlus::next_u64`]
    /// times 2⁻⁵³.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference() {
        // Vigna's splitmix64.c seeded with 0 starts 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4,
        // 0x06c45d188009454f (widely published test vector).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn output_at_is_the_sequence() {
        let mut rng = SplitMix64::new(12345);
        for i in 0..100 {
            assert_eq!(
                rng.next_u64(),
                SplitMix64::output_at(12345, i),
                "output {i}"
            );
        }
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
    fn streams_differ_by_seed_purpose_and_words() {
        let first =
            |seed, purpose, words: &[u64]| SplitMix64::stream(seed, purpose, words).next_u64();
        let draws = [
            first(1, Purpose::Shuffle, &[0]),
            first(1, Purpose::Shuffle, &[1]),
            first(2, Purpose::Shuffle, &[0]),
            first(1, Purpose::Augment, &[0]),
            first(1, Purpose::Shuffle, &[0, 0]),
        ];
        for (i, a) in draws.iter().enumerate() {
            for b in &draws[i + 1..] {
                assert_ne!(a, b, "{draws:x?}");
            }
        }
    }

    #[test]
    fn stream_keys_are_those_of_earlier_versions() {
        // The data loader's generator before this module: state = fold of
        // mix(h ^ mix(w + γ)) over [stream, words…] starting from mix(seed), with stream 1
        // for shuffles and 2 for augmentation. Checkpoints' epoch orders depend on it.
        let old = |seed: u64, words: &[u64]| {
            words
                .iter()
                .fold(mix(seed), |h, &w| mix(h ^ mix(w.wrapping_add(GAMMA))))
        };
        assert_eq!(
            SplitMix64::stream(9, Purpose::Shuffle, &[3]),
            SplitMix64::new(old(9, &[1, 3]))
        );
        assert_eq!(
            SplitMix64::stream(9, Purpose::Augment, &[3, 40]),
            SplitMix64::new(old(9, &[2, 3, 40]))
        );
    }

    #[test]
    fn xoshiro_matches_rand() {
        use rand::{Rng, RngExt, SeedableRng};
        for seed in [0, 1, 0x5eed, u64::MAX] {
            let mut ours = Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut theirs = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
            for _ in 0..64 {
                assert_eq!(ours.next_u64(), theirs.next_u64());
                assert_eq!(ours.next_f64().to_bits(), theirs.random::<f64>().to_bits());
            }
        }
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut order = SplitMix64::new(3).permutation(100);
        assert_ne!(order, (0..100).collect::<Vec<_>>());
        order.sort_unstable();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
    }
}
