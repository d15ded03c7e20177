//! Softmax and log-softmax against f64 references, at extreme inputs, with their backward
//! passes checked by central differences, and bit-identical on 1 and 2 threads.

mod common;

use common::{assert_close, assert_error, bits, pool, random_vec};
use proptest::prelude::*;
use ventral_kernels::softmax::{
    log_softmax, log_softmax_backward, log_softmax_on, softmax, softmax_backward, softmax_on,
};

/// Reference softmax of one row in f64, shifted by the max.
fn softmax_ref(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Reference log-softmax of one row in f64.
fn log_softmax_ref(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
    row.iter().map(|v| v - lse).collect()
}

/// Applies a row function to every row of length `n`.
fn rows(x: &[f32], n: usize, f: fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    x.chunks(n)
        .flat_map(|r| f(&r.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()))
        .collect()
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    let dim = prop_oneof![
        Just(1usize),
        Just(7),
        Just(17),
        Just(63),
        Just(65),
        1usize..100
    ];
    prop::collection::vec(dim, 1..=3).prop_filter("keep tests small", |s| {
        s.iter().product::<usize>() <= 40_000
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn softmax_and_log_softmax_match_f64(shape in shape(), seed in any::<u64>()) {
        let n = *shape.last().unwrap();
        let len: usize = shape.iter().product();
        let x = random_vec(len, -30.0, 30.0, seed);
        let want = rows(&x, n, softmax_ref);
        let want_log = rows(&x, n, log_softmax_ref);
        for isa in common::isas() {
            let mut y = vec![f32::NAN; len];
            softmax_on(isa, &x, &shape, &mut y).unwrap();
            // Error budget: exp's 1e-6 bound, the f32 rounding of x - max (up to
            // |x - max| · 2^-24 ≤ 60 · 6e-8 relative), and three roundings.
            assert_close(&y, &want, 0.0, 6e-6, "softmax");
            for r in y.chunks(n) {
                let total: f64 = r.iter().map(|&v| f64::from(v)).sum();
                prop_assert!((total - 1.0).abs() < 1e-5, "row sums to {}", total);
            }
            log_softmax_on(isa, &x, &shape, &mut y).unwrap();
            // (x - m) and ln s are each rounded once, then subtracted: absolute error of a
            // few ulps of max(|x - m|, ln s) ≤ 60 + ln 100.
            assert_close(&y, &want_log, 2e-5, 1e-6, "log_softmax");
        }
    }

    #[test]
    fn backward_passes_match_central_differences(shape in shape(), seed in any::<u64>()) {
        let n = *shape.last().unwrap();
        let len: usize = shape.iter().product();
        prop_assume!(n <= 40);
        let x = random_vec(len, -3.0, 3.0, seed);
        let w = random_vec(len, -1.0, 1.0, seed ^ 9);
        // L(x) = Σ w · f(x) per row; dL/dx_i by central differences of the f64 reference.
        for (forward, backward, reference) in [
            (softmax as Fwd, softmax_backward as Bwd, softmax_ref as fn(&[f64]) -> Vec<f64>),
            (log_softmax, log_softmax_backward, log_softmax_ref),
        ] {
            let mut y = vec![0.0; len];
            forward(&x, &shape, &mut y).unwrap();
            let mut dx = vec![0.0; len];
            backward(&y, &w, &shape, &mut dx).unwrap();
            let mut numeric = Vec::with_capacity(len);
            for (xr, wr) in x.chunks(n).zip(w.chunks(n)) {
                let loss = |row: &[f64]| -> f64 {
                    reference(row).iter().zip(wr).map(|(a, &b)| a * f64::from(b)).sum()
                };
                let base: Vec<f64> = xr.iter().map(|&v| f64::from(v)).collect();
                for i in 0..n {
                    let h = 1e-6;
                    let (mut up, mut down) = (base.clone(), base.clone());
                    up[i] += h;
                    down[i] -= h;
                    numeric.push((loss(&up) - loss(&down)) / (2.0 * h));
                }
            }
            assert_close(&dx, &numeric, 1e-5, 1e-3, "softmax backward");
        }
    }
}

type Fwd = fn(&[f32], &[usize], &mut [f32]) -> ventral_kernels::Result<()>;
type Bwd = fn(&[f32], &[f32], &[usize], &mut [f32]) -> ventral_kernels::Result<()>;

#[test]
fn huge_equal_logits_split_evenly() {
    // Shifted by the max 1000 both exponents are e^0 = 1, so the answer is exactly 1/2 each,
    // and log-softmax is -ln 2; without the shift e^1000 would overflow to inf and give NaN.
    for isa in common::isas() {
        let mut y = [0.0; 2];
        softmax_on(isa, &[1000.0, 1000.0], &[2], &mut y).unwrap();
        assert_eq!(y, [0.5, 0.5]);
        log_softmax_on(isa, &[1000.0, 1000.0], &[2], &mut y).unwrap();
        assert_eq!(y, [-std::f32::consts::LN_2; 2]);
    }
}

#[test]
fn far_apart_logits_stay_finite() {
    // Shifted by 0: e^-1000 underflows to exactly 0 and e^0 = 1, so softmax is [0, 1];
    // log-softmax is x - 0 - ln(0 + 1) = x exactly, where ln(softmax) would give -inf.
    for isa in common::isas() {
        let mut y = [f32::NAN; 2];
        softmax_on(isa, &[-1000.0, 0.0], &[1, 2], &mut y).unwrap();
        assert_eq!(y, [0.0, 1.0]);
        log_softmax_on(isa, &[-1000.0, 0.0], &[1, 2], &mut y).unwrap();
        assert_eq!(y, [-1000.0, 0.0]);
        // Large magnitudes: e^{-2e38} is 0, ln(1 + 0) = 0, so the answer is x - max rounded
        // once to f32.
        log_softmax_on(isa, &[1e38, -1e38], &[2], &mut y).unwrap();
        let gap = (f64::from(-1e38f32) - f64::from(1e38f32)) as f32;
        assert_eq!(y, [0.0, gap]);
        assert!(gap.is_finite());
    }
}

#[test]
fn nan_rows_are_nan_and_other_rows_are_untouched() {
    let x = [1.0, f32::NAN, 0.0, 0.0];
    let mut y = [0.0; 4];
    softmax(&x, &[2, 2], &mut y).unwrap();
    assert!(y[0].is_nan() && y[1].is_nan());
    assert_eq!(&y[2..], &[0.5, 0.5]);
}

#[test]
fn degenerate_shapes() {
    // A scalar is one row of one element: softmax 1, log-softmax 0.
    let mut y = [0.0];
    softmax(&[5.0], &[], &mut y).unwrap();
    assert_eq!(y, [1.0]);
    log_softmax(&[5.0], &[], &mut y).unwrap();
    assert_eq!(y, [0.0]);
    // Empty rows or no rows: nothing to do.
    softmax(&[], &[3, 0], &mut []).unwrap();
    softmax(&[], &[0, 3], &mut []).unwrap();
    // Mismatched lengths are errors naming the op.
    let err = softmax(&[0.0; 6], &[2, 3], &mut [0.0; 5]).unwrap_err();
    assert!(err.to_string().starts_with("softmax: "), "{err}");
    assert_error(
        log_softmax(&[0.0; 5], &[2, 3], &mut [0.0; 5]),
        "ShapeMismatch",
        "log_softmax: x has 5 elements, but shape [2, 3] needs 6",
    );
    assert_error(
        softmax_backward(&[0.0; 6], &[0.0; 5], &[2, 3], &mut [0.0; 6]),
        "ShapeMismatch",
        "softmax_backward: slices must have equal lengths, but y has 6, dy has 5, dx has 6",
    );
}

#[test]
fn results_are_bit_identical_on_one_and_two_threads() {
    let shape = [1001, 257];
    let x = random_vec(1001 * 257, -20.0, 20.0, 31);
    let dy = random_vec(x.len(), -1.0, 1.0, 32);
    let run = || {
        let mut out = Vec::new();
        for (f, b) in [
            (softmax as Fwd, softmax_backward as Bwd),
            (log_softmax, log_softmax_backward),
        ] {
            let mut y = vec![0.0; x.len()];
            f(&x, &shape, &mut y).unwrap();
            let mut dx = vec![0.0; x.len()];
            b(&y, &dy, &shape, &mut dx).unwrap();
            out.push(y);
            out.push(dx);
        }
        out
    };
    let one = pool(1).install(run);
    let two = pool(2).install(run);
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(bits(a), bits(b));
    }
}
