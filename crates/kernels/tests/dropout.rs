//! Dropout masks: PyTorch's inverted-dropout semantics, the published SplitMix64 stream,
//! reproducibility, keep-rate statistics, independence from the thread count, bad `p`.

mod common;

use common::{assert_error, bits, pool, random_vec};
use proptest::prelude::*;
use ventral_kernels::dropout::{dropout, dropout_mask};

/// Reference SplitMix64 (Vigna's splitmix64.c): a sequential generator, written independently
/// of the kernel's counter-based form.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[test]
fn reference_generator_reproduces_published_outputs() {
    // The first outputs of SplitMix64 seeded with 0, as published with splitmix64.c and used
    // to seed xoshiro generators.
    let mut g = SplitMix64(0);
    let first: Vec<u64> = (0..4).map(|_| g.next()).collect();
    assert_eq!(
        first,
        [
            0xE220A8397B1DCDAF,
            0x6E789E6AA1B965F4,
            0x06C45D188009454F,
            0xF88BB8A8724C81EC
        ]
    );
}

#[test]
fn seed_zero_masks_follow_the_published_stream() {
    // Element i is kept when the high 32 bits of output i are >= round(p · 2^32). The high
    // words of the first four outputs are E220A839, 6E789E6A, 06C45D18, F88BB8A8.
    let mut m = [0.0; 4];
    // p = 0.5: threshold 8000_0000 keeps outputs 0 and 3; the scale is 1 / 0.5 = 2.
    dropout_mask(0.5, 0, &mut m).unwrap();
    assert_eq!(m, [2.0, 0.0, 0.0, 2.0]);
    // p = 0.9: threshold E666_6666 keeps only output 3; the scale is 1 / 0.1 in f64, rounded.
    dropout_mask(0.9, 0, &mut m).unwrap();
    let s = (1.0 / (1.0 - f64::from(0.9f32))) as f32;
    assert_eq!(m, [0.0, 0.0, 0.0, s]);
    // p = 0.03: threshold 07AE_147B drops only output 2 (06C4_5D18).
    dropout_mask(0.03, 0, &mut m).unwrap();
    let s = (1.0 / (1.0 - f64::from(0.03f32))) as f32;
    assert_eq!(m, [s, s, 0.0, s]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn masks_match_the_sequential_reference(
        len in 0usize..2000,
        p in 0.0f32..1.0,
        seed in any::<u64>(),
    ) {
        let mut m = vec![f32::NAN; len];
        dropout_mask(p, seed, &mut m).unwrap();
        let threshold = (f64::from(p) * 4_294_967_296.0).round() as u64;
        let scale = (1.0 / (1.0 - f64::from(p))) as f32;
        let mut g = SplitMix64(seed);
        for (i, &v) in m.iter().enumerate() {
            let keep = g.next() >> 32 >= threshold;
            prop_assert_eq!(v, if keep { scale } else { 0.0 }, "element {}", i);
        }
    }
}

#[test]
fn keep_rate_and_mean_match_one_minus_p() {
    // For n = 10^6 draws the kept count is Binomial(n, 1 - p) with standard deviation
    // sqrt(n p (1 - p)) ≤ 500; six of them bound a false failure at ~1e-9.
    let n = 1_000_000usize;
    let mut m = vec![0.0; n];
    for (p, seed) in [(0.1f32, 1u64), (0.5, 2), (0.8, 3)] {
        dropout_mask(p, seed, &mut m).unwrap();
        let kept = m.iter().filter(|&&v| v != 0.0).count() as f64;
        let expected = n as f64 * (1.0 - f64::from(p));
        let sd = (n as f64 * f64::from(p) * (1.0 - f64::from(p))).sqrt();
        assert!(
            (kept - expected).abs() < 6.0 * sd,
            "p = {p}: kept {kept}, expected {expected}"
        );
        // Inverted dropout keeps the expected value: mean of the mask ≈ 1.
        let mean = m.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let sd_mean = 6.0 * sd / expected;
        assert!((mean - 1.0).abs() < sd_mean, "p = {p}: mask mean {mean}");
    }
}

#[test]
fn seeds_reproduce_and_differ() {
    let (mut a, mut b, mut c) = (vec![0.0; 4096], vec![0.0; 4096], vec![0.0; 4096]);
    dropout_mask(0.5, 42, &mut a).unwrap();
    dropout_mask(0.5, 42, &mut b).unwrap();
    dropout_mask(0.5, 43, &mut c).unwrap();
    assert_eq!(bits(&a), bits(&b));
    // Two independent masks agree on about half the elements, certainly not all.
    let same = a.iter().zip(&c).filter(|(x, y)| x == y).count();
    assert!((1500..2600).contains(&same), "{same} of 4096 equal");
}

#[test]
fn endpoints_and_bad_probabilities() {
    let mut m = [f32::NAN; 100];
    dropout_mask(0.0, 9, &mut m).unwrap();
    assert_eq!(m, [1.0; 100]);
    dropout_mask(1.0, 9, &mut m).unwrap();
    assert_eq!(m, [0.0; 100]);
    for p in [-0.1, 1.0001, f32::NAN, f32::INFINITY] {
        let err = dropout_mask(p, 9, &mut m).unwrap_err();
        assert!(err.to_string().contains("dropout"), "{err}");
    }
}

#[test]
fn dropout_multiplies_by_its_mask() {
    let x = random_vec(1001, -3.0, 3.0, 5);
    let (mut y, mut mask) = (vec![0.0; 1001], vec![0.0; 1001]);
    dropout(&x, 0.3, 77, &mut y, &mut mask).unwrap();
    let mut again = vec![0.0; 1001];
    dropout_mask(0.3, 77, &mut again).unwrap();
    assert_eq!(bits(&mask), bits(&again));
    for ((&yv, &xv), &m) in y.iter().zip(&x).zip(&mask) {
        assert_eq!(yv, xv * m);
    }
    assert_error(
        dropout(&x, 0.3, 77, &mut y[..1000], &mut mask),
        "ShapeMismatch",
        "x has 1001, y has 1000, mask has 1001",
    );
    assert_error(
        dropout(&x, 2.0, 77, &mut y, &mut mask),
        "InvalidArgument",
        "dropout probability must be in [0, 1], got 2",
    );
}

#[test]
fn masks_are_identical_on_one_and_two_threads() {
    let run = || {
        let mut m = vec![0.0; 300_001];
        dropout_mask(0.25, 0xDEAD_BEEF, &mut m).unwrap();
        m
    };
    let one = pool(1).install(run);
    let two = pool(2).install(run);
    assert_eq!(bits(&one), bits(&two));
}
