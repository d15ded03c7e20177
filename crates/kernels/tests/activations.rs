//! Every unary op and activation, forward and backward, against plain f64 references, against
//! central differences of those references (PyTorch gradcheck tolerances), on every
//! instruction-set path, at lengths that break the 16-wide chunking.

mod common;

use common::{assert_close, bits, pool, random_vec};
use proptest::prelude::*;
use ventral_kernels::elementwise as ew;
use ventral_kernels::{Isa, KernelError, Result};

type Fwd = Box<dyn Fn(Isa, &[f32], &mut [f32]) -> Result<()> + Sync>;
/// Backward kernel called as `(isa, x, y, dy, dx)`; each op picks the input it needs.
type Bwd = Box<dyn Fn(Isa, &[f32], &[f32], &[f32], &mut [f32]) -> Result<()> + Sync>;

/// One op: its kernels, its f64 definition and derivative, and where to test it.
struct Case {
    name: &'static str,
    /// Input range for random tests.
    range: (f32, f32),
    /// Points where the derivative jumps; central differences skip their neighbourhood.
    kinks: Vec<f64>,
    forward: Fwd,
    backward: Bwd,
    f: fn(f64) -> f64,
    df: fn(f64) -> f64,
    /// Forward tolerance: 0 means the f32 result must be the correctly rounded f64 one.
    rtol: f64,
}

const SLOPE: f32 = 0.2;
const ALPHA: f32 = 1.5;
const EXPONENT: f32 = 2.5;
const NEG_EXPONENT: f32 = -1.5;
const LO: f32 = -0.5;
const HI: f32 = 0.75;
const FACTOR: f32 = 1.75;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "relu",
            range: (-3.0, 3.0),
            kinks: vec![0.0],
            forward: Box::new(ew::relu_on),
            backward: Box::new(|i, x, _, dy, dx| ew::relu_backward_on(i, x, dy, dx)),
            f: |x| x.max(0.0),
            df: |x| if x > 0.0 { 1.0 } else { 0.0 },
            rtol: 0.0,
        },
        Case {
            name: "leaky_relu",
            range: (-3.0, 3.0),
            kinks: vec![0.0],
            forward: Box::new(|i, x, y| ew::leaky_relu_on(i, x, SLOPE, y)),
            backward: Box::new(|i, x, _, dy, dx| ew::leaky_relu_backward_on(i, x, SLOPE, dy, dx)),
            f: |x| if x > 0.0 { x } else { f64::from(SLOPE) * x },
            df: |x| if x > 0.0 { 1.0 } else { f64::from(SLOPE) },
            rtol: 0.0,
        },
        Case {
            name: "elu",
            range: (-8.0, 3.0),
            kinks: vec![0.0],
            forward: Box::new(|i, x, y| ew::elu_on(i, x, ALPHA, y)),
            backward: Box::new(|i, x, _, dy, dx| ew::elu_backward_on(i, x, ALPHA, dy, dx)),
            f: |x| {
                if x > 0.0 {
                    x
                } else {
                    f64::from(ALPHA) * x.exp_m1()
                }
            },
            df: |x| {
                if x > 0.0 {
                    1.0
                } else {
                    f64::from(ALPHA) * x.exp()
                }
            },
            rtol: 1e-6,
        },
        Case {
            name: "sigmoid",
            range: (-20.0, 20.0),
            kinks: vec![],
            forward: Box::new(ew::sigmoid_on),
            backward: Box::new(|i, _, y, dy, dx| ew::sigmoid_backward_on(i, y, dy, dx)),
            f: |x| 1.0 / (1.0 + (-x).exp()),
            df: |x| {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s)
            },
            rtol: 1e-6,
        },
        Case {
            name: "tanh",
            range: (-6.0, 6.0),
            kinks: vec![],
            forward: Box::new(ew::tanh_on),
            backward: Box::new(|i, _, y, dy, dx| ew::tanh_backward_on(i, y, dy, dx)),
            f: f64::tanh,
            df: |x| 1.0 - x.tanh().powi(2),
            rtol: 1e-6,
        },
        Case {
            name: "exp",
            range: (-20.0, 20.0),
            kinks: vec![],
            forward: Box::new(ew::exp_on),
            backward: Box::new(|i, _, y, dy, dx| ew::exp_backward_on(i, y, dy, dx)),
            f: f64::exp,
            df: f64::exp,
            rtol: 1e-6,
        },
        Case {
            name: "log",
            range: (0.01, 100.0),
            kinks: vec![],
            forward: Box::new(ew::log_on),
            backward: Box::new(|i, x, _, dy, dx| ew::log_backward_on(i, x, dy, dx)),
            f: f64::ln,
            df: |x| 1.0 / x,
            rtol: 1e-6,
        },
        Case {
            name: "sqrt",
            range: (0.01, 100.0),
            kinks: vec![],
            forward: Box::new(ew::sqrt_on),
            backward: Box::new(|i, _, y, dy, dx| ew::sqrt_backward_on(i, y, dy, dx)),
            f: f64::sqrt,
            df: |x| 0.5 / x.sqrt(),
            rtol: 0.0,
        },
        Case {
            name: "pow(x, 2.5)",
            range: (0.01, 10.0),
            kinks: vec![],
            forward: Box::new(|i, x, y| ew::pow_on(i, x, EXPONENT, y)),
            backward: Box::new(|i, x, _, dy, dx| ew::pow_backward_on(i, x, EXPONENT, dy, dx)),
            f: |x| x.powf(f64::from(EXPONENT)),
            df: |x| f64::from(EXPONENT) * x.powf(f64::from(EXPONENT) - 1.0),
            rtol: 1e-6,
        },
        Case {
            name: "pow(x, -1.5)",
            range: (0.05, 10.0),
            kinks: vec![],
            forward: Box::new(|i, x, y| ew::pow_on(i, x, NEG_EXPONENT, y)),
            backward: Box::new(|i, x, _, dy, dx| ew::pow_backward_on(i, x, NEG_EXPONENT, dy, dx)),
            f: |x| x.powf(f64::from(NEG_EXPONENT)),
            df: |x| f64::from(NEG_EXPONENT) * x.powf(f64::from(NEG_EXPONENT) - 1.0),
            rtol: 1e-6,
        },
        Case {
            name: "clamp",
            range: (-2.0, 2.0),
            kinks: vec![f64::from(LO), f64::from(HI)],
            forward: Box::new(|i, x, y| ew::clamp_on(i, x, LO, HI, y)),
            backward: Box::new(|i, x, _, dy, dx| ew::clamp_backward_on(i, x, LO, HI, dy, dx)),
            f: |x| x.max(f64::from(LO)).min(f64::from(HI)),
            df: |x| {
                if x >= f64::from(LO) && x <= f64::from(HI) {
                    1.0
                } else {
                    0.0
                }
            },
            rtol: 0.0,
        },
        Case {
            name: "scale",
            range: (-5.0, 5.0),
            kinks: vec![],
            forward: Box::new(|i, x, y| ew::scale_on(i, x, FACTOR, y)),
            // The derivative of scale is scale itself.
            backward: Box::new(|i, _, _, dy, dx| ew::scale_on(i, dy, FACTOR, dx)),
            f: |x| f64::from(FACTOR) * x,
            df: |_| f64::from(FACTOR),
            rtol: 0.0,
        },
    ]
}

/// Lengths around the 16-wide chunk: empty, single, tails of every size class.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(7),
        Just(15),
        Just(16),
        Just(17),
        Just(63),
        Just(65),
        1usize..300
    ]
}

/// Runs forward then backward; returns `(y, dx)`.
fn run(case: &Case, isa: Isa, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![f32::NAN; x.len()];
    (case.forward)(isa, x, &mut y).unwrap();
    let mut dx = vec![f32::NAN; x.len()];
    (case.backward)(isa, x, &y, dy, &mut dx).unwrap();
    (y, dx)
}

/// Central difference of `f` at `x` in f64 with a step relative to `x`.
fn central_difference(f: fn(f64) -> f64, x: f64) -> f64 {
    let h = 1e-6 * x.abs().max(1.0);
    (f(x + h) - f(x - h)) / (2.0 * h)
}

/// Whether `dx` matches `dy * f'(x)` by central differences at every point away from kinks,
/// with PyTorch gradcheck's tolerances (atol 1e-5, rtol 1e-3).
fn gradcheck(case: &Case, x: &[f32], dy: &[f32], dx: &[f32]) -> std::result::Result<(), String> {
    for i in 0..x.len() {
        let xi = f64::from(x[i]);
        if case.kinks.iter().any(|&k| (xi - k).abs() < 1e-3) {
            continue;
        }
        let want = f64::from(dy[i]) * central_difference(case.f, xi);
        let got = f64::from(dx[i]);
        if (got - want).abs() > 1e-5 + 1e-3 * want.abs() {
            return Err(format!(
                "{}: x = {xi}: dx = {got}, numeric {want}",
                case.name
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn forward_matches_f64_reference(len in length(), seed in any::<u64>()) {
        for case in cases() {
            let x = random_vec(len, case.range.0, case.range.1, seed);
            let want: Vec<f64> = x.iter().map(|&v| (case.f)(f64::from(v))).collect();
            for isa in common::isas() {
                let (y, _) = run(&case, isa, &x, &x);
                if case.rtol == 0.0 {
                    // Exact ops: the f32 result is the f64 one rounded once.
                    let rounded: Vec<f32> = want.iter().map(|&w| w as f32).collect();
                    prop_assert_eq!(bits(&y), bits(&rounded), "{} on {:?}", case.name, isa);
                } else {
                    assert_close(&y, &want, 0.0, case.rtol, case.name);
                }
            }
        }
    }

    #[test]
    fn backward_matches_analytic_derivative_and_central_differences(
        len in length(),
        seed in any::<u64>(),
    ) {
        for case in cases() {
            let x = random_vec(len, case.range.0, case.range.1, seed);
            let dy = random_vec(len, -1.0, 1.0, seed ^ 0x5eed);
            let want: Vec<f64> = x
                .iter()
                .zip(&dy)
                .map(|(&xv, &g)| f64::from(g) * (case.df)(f64::from(xv)))
                .collect();
            for isa in common::isas() {
                let (_, dx) = run(&case, isa, &x, &dy);
                // Backward ops that read y inherit its rounding (for tanh, 1 - y^2 cancels
                // near |y| = 1), hence the small absolute term.
                assert_close(&dx, &want, 2e-6, 2e-6, case.name);
                gradcheck(&case, &x, &dy, &dx).map_err(TestCaseError::fail)?;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `add_relu` is `add` then `relu`, bit for bit, on every instruction set and length
    /// (including special values: NaN, infinities that sum to NaN, signed zeros).
    #[test]
    fn add_relu_is_add_then_relu(len in length(), seed in any::<u64>()) {
        let mut a = random_vec(len, -2.0, 2.0, seed);
        let mut b = random_vec(len, -2.0, 2.0, seed ^ 1);
        let special = [(f32::NAN, 1.0), (f32::INFINITY, f32::NEG_INFINITY), (-0.0, 0.0), (-0.0, -0.0), (1.0, -1.0)];
        for (i, &(x, z)) in special.iter().enumerate().take(len) {
            (a[i], b[i]) = (x, z);
        }
        let mut sum = vec![0.0; len];
        ew::add(&a, &[len], &b, &[len], &mut sum).unwrap();
        let mut want = vec![0.0; len];
        ew::relu(&sum, &mut want).unwrap();
        for isa in common::isas() {
            let mut y = vec![f32::NAN; len];
            ew::add_relu_on(isa, &a, &b, &mut y).unwrap();
            prop_assert_eq!(bits(&y), bits(&want), "{:?}", isa);
            // The variant that writes a new vector without clearing it: the same bits.
            let fresh = ew::add_relu_new_on(isa, &a, &b).unwrap();
            prop_assert_eq!(bits(&fresh), bits(&want), "new, {:?}", isa);
        }
    }

    /// ReLU's derivative into new vectors (one, or two copies in one pass) has the bits of
    /// `relu_backward` into a cleared one, on every instruction set and length, also where
    /// the parallel split's pieces end (past 64 Ki elements).
    #[test]
    fn relu_backward_into_new_vectors_is_relu_backward(
        len in prop_oneof![length(), Just(70_001usize), Just(1 << 16)],
        seed in any::<u64>(),
    ) {
        let mut y = random_vec(len, -1.0, 1.0, seed);
        let dy = random_vec(len, -2.0, 2.0, seed ^ 2);
        for (i, v) in [f32::NAN, 0.0, -0.0].into_iter().enumerate().take(len) {
            y[i] = v;
        }
        for isa in common::isas() {
            let mut want = vec![f32::NAN; len];
            ew::relu_backward_on(isa, &y, &dy, &mut want).unwrap();
            let one = ew::relu_backward_new_on(isa, &y, &dy).unwrap();
            let (first, second) = ew::relu_backward_twice_on(isa, &y, &dy).unwrap();
            prop_assert_eq!(bits(&one), bits(&want), "new, {:?}", isa);
            prop_assert_eq!(bits(&first), bits(&want), "twice (first), {:?}", isa);
            prop_assert_eq!(bits(&second), bits(&want), "twice (second), {:?}", isa);
        }
    }
}

#[test]
fn new_vector_variants_check_lengths() {
    let err = ew::add_relu_new(&[1.0; 3], &[1.0; 2])
        .unwrap_err()
        .to_string();
    assert!(err.contains("add_relu") && err.contains("b"), "{err}");
    let err = ew::relu_backward_twice(&[1.0; 3], &[1.0; 4])
        .unwrap_err()
        .to_string();
    assert!(err.contains("relu_backward") && err.contains("dy"), "{err}");
    let err = ew::relu_backward_new(&[1.0; 2], &[1.0; 1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("relu_backward"), "{err}");
}

#[test]
fn add_relu_lengths_must_match() {
    let mut y = vec![0.0; 3];
    let err = ew::add_relu(&[1.0; 3], &[1.0; 2], &mut y)
        .unwrap_err()
        .to_string();
    assert!(err.contains("add_relu") && err.contains("b"), "{err}");
}

#[test]
fn gradcheck_rejects_a_wrong_backward() {
    // sigmoid' = s (1 - s); a backward that forgets the (1 - s) factor must be caught.
    let mut wrong = cases().into_iter().find(|c| c.name == "sigmoid").unwrap();
    wrong.backward = Box::new(|i, _, y, dy, dx| ew::exp_backward_on(i, y, dy, dx));
    let x = random_vec(257, -4.0, 4.0, 7);
    let dy = vec![1.0; x.len()];
    let (_, dx) = run(&wrong, Isa::Portable, &x, &dy);
    let err = gradcheck(&wrong, &x, &dy, &dx).unwrap_err();
    assert!(
        err.starts_with("sigmoid: x = ") && err.contains("numeric"),
        "{err}"
    );
}

#[test]
fn every_path_gives_identical_bits_including_special_values() {
    let mut x = random_vec(1000, -100.0, 100.0, 3);
    x.extend([
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        1e-40,
        -1e-40,
        f32::MAX,
        f32::MIN,
    ]);
    let dy = random_vec(x.len(), -1.0, 1.0, 4);
    for case in cases() {
        let (y0, dx0) = run(&case, Isa::Portable, &x, &dy);
        for isa in common::isas() {
            let (y, dx) = run(&case, isa, &x, &dy);
            assert_eq!(bits(&y), bits(&y0), "{} forward on {isa:?}", case.name);
            assert_eq!(bits(&dx), bits(&dx0), "{} backward on {isa:?}", case.name);
        }
    }
}

#[test]
fn nan_propagates_through_forward_ops() {
    for case in cases() {
        let (y, _) = run(&case, Isa::best_available(), &[f32::NAN], &[1.0]);
        assert!(y[0].is_nan(), "{}({}) is not NaN", case.name, y[0]);
    }
}

#[test]
fn kinks_take_pytorch_values() {
    // At x = 0: relu' = 0, leaky' = slope, elu' = alpha (alpha · e^0); clamp passes the
    // gradient on both bounds.
    let mut dx = [0.0];
    ew::relu_backward(&[0.0], &[1.0], &mut dx).unwrap();
    assert_eq!(dx, [0.0]);
    ew::leaky_relu_backward(&[0.0], SLOPE, &[1.0], &mut dx).unwrap();
    assert_eq!(dx, [SLOPE]);
    ew::elu_backward(&[0.0], ALPHA, &[1.0], &mut dx).unwrap();
    assert_eq!(dx, [ALPHA]);
    let mut dx2 = [0.0; 2];
    ew::clamp_backward(&[LO, HI], LO, HI, &[1.0, 1.0], &mut dx2).unwrap();
    assert_eq!(dx2, [1.0, 1.0]);
    // pow' with exponent 0 is 0 even at x = 0 (PyTorch masks the 0 · 0^-1).
    ew::pow_backward(&[0.0], 0.0, &[1.0], &mut dx).unwrap();
    assert_eq!(dx, [0.0]);
}

#[test]
fn clamp_with_crossed_bounds_gives_hi_and_never_panics() {
    let mut y = [0.0; 3];
    ew::clamp(&[-1.0, 0.5, 3.0], 2.0, 1.0, &mut y).unwrap();
    assert_eq!(y, [1.0; 3]);
    ew::clamp(&[-1.0, 0.5, 3.0], f32::NAN, f32::NAN, &mut y).unwrap();
    assert_eq!(y, [-1.0, 0.5, 3.0]);
}

#[test]
fn length_mismatches_are_errors_naming_the_op() {
    let mut short = [0.0; 2];
    let err = ew::tanh(&[1.0, 2.0, 3.0], &mut short).unwrap_err();
    assert!(
        matches!(err, KernelError::ShapeMismatch { op: "tanh", .. }),
        "{err}"
    );
    let err = ew::sigmoid_backward(&[0.5; 3], &[1.0; 2], &mut [0.0; 3]).unwrap_err();
    assert!(err.to_string().contains("sigmoid_backward"), "{err}");
    assert!(err.to_string().contains("dy has 2"), "{err}");
}

#[test]
fn large_inputs_give_identical_bits_on_one_and_two_threads() {
    // Above the parallel threshold (64 Ki elements), with a ragged last task.
    let x = random_vec(200_003, -10.0, 10.0, 11);
    let dy = random_vec(x.len(), -1.0, 1.0, 12);
    for case in cases() {
        let one = pool(1).install(|| run(&case, Isa::best_available(), &x, &dy));
        let two = pool(2).install(|| run(&case, Isa::best_available(), &x, &dy));
        assert_eq!(bits(&one.0), bits(&two.0), "{} forward", case.name);
        assert_eq!(bits(&one.1), bits(&two.1), "{} backward", case.name);
    }
}

#[test]
fn fresh_buffers_are_zeros_and_copies_on_any_thread_count() {
    // Around the parallel threshold (65,536 elements) and far above it.
    for n in [0, 1, 65_535, 65_536, 65_537, 1 << 20] {
        let x = random_vec(n, -1.0, 1.0, n as u64);
        for threads in [1, 2] {
            let (zeros, copy) = common::pool(threads).install(|| (ew::zeros(n), ew::copied(&x)));
            assert_eq!(zeros.len(), n);
            assert!(zeros.iter().all(|v| v.to_bits() == 0), "{n} on {threads}");
            assert_eq!(bits(&copy), bits(&x), "{n} on {threads}");
        }
    }
}
