//! The documented accuracy bound of the transcendental kernels: maximum relative error
//! ≤ 1e-6 against f64 `std`, over dense sweeps of the documented ranges, on every
//! instruction-set path. Each sweep prints the measured maximum (run with `--nocapture`).

mod common;

use common::rel_err;
use ventral_kernels::Isa;
use ventral_kernels::elementwise::{elu_on, exp_on, log_on, pow_on, sigmoid_on, tanh_on};

/// The bound every transcendental kernel documents.
const BOUND: f64 = 1e-6;

/// `n` points evenly spaced over `[lo, hi]`, plus every f32 bit pattern in the 2^16 floats
/// nearest each of a few awkward points (range-reduction boundaries, 0, 1) inside the range.
fn sweep(lo: f32, hi: f32, n: usize, awkward: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = (0..=n)
        .map(|i| (f64::from(lo) + (f64::from(hi) - f64::from(lo)) * i as f64 / n as f64) as f32)
        .collect();
    for &c in awkward {
        let b = c.to_bits();
        for d in 0..1u32 << 15 {
            for x in [
                f32::from_bits(b.wrapping_add(d)),
                f32::from_bits(b.wrapping_sub(d)),
            ] {
                if x.is_finite() && x >= lo && x <= hi {
                    v.push(x);
                }
            }
        }
    }
    v
}

/// Points spread log-uniformly over `[lo, hi]`, both positive.
fn log_sweep(lo: f64, hi: f64, n: usize) -> Vec<f32> {
    (0..=n)
        .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / n as f64).exp() as f32)
        .collect()
}

/// Maximum relative error of `kernel` over `xs` against `reference`, with its argument.
fn max_rel_err(
    isa: Isa,
    xs: &[f32],
    kernel: impl Fn(Isa, &[f32], &mut [f32]) -> ventral_kernels::Result<()>,
    reference: impl Fn(f64) -> f64,
) -> (f64, f32) {
    let mut ys = vec![0.0; xs.len()];
    kernel(isa, xs, &mut ys).unwrap();
    xs.iter()
        .zip(&ys)
        .map(|(&x, &y)| (rel_err(y, reference(f64::from(x))), x))
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
}

fn check(
    name: &str,
    xs: &[f32],
    kernel: impl Fn(Isa, &[f32], &mut [f32]) -> ventral_kernels::Result<()>,
    reference: impl Fn(f64) -> f64,
) {
    for isa in common::isas() {
        let (err, at) = max_rel_err(isa, xs, &kernel, &reference);
        println!(
            "{name} on {}: max relative error {err:.3e} at x = {at:e} over {} points",
            isa.name(),
            xs.len()
        );
        assert!(
            err <= BOUND,
            "{name} on {isa:?}: relative error {err:e} at x = {at:e}"
        );
    }
}

#[test]
fn exp_meets_bound_on_normal_range() {
    // Range-reduction boundaries sit at odd multiples of ln(2)/2.
    let ln2 = std::f32::consts::LN_2;
    let xs = sweep(
        -87.0,
        88.0,
        4_000_000,
        &[0.0, 0.5 * ln2, -0.5 * ln2, 1.5 * ln2, 88.0],
    );
    check("exp", &xs, exp_on, f64::exp);
}

#[test]
fn log_meets_bound_on_positive_floats() {
    let mut xs = log_sweep(1e-30, 1e30, 2_000_000);
    // Near 1 the result is near 0, the hardest case for relative error; sqrt(1/2) is where
    // the mantissa reduction switches.
    xs.extend(sweep(
        0.5,
        2.0,
        1_000_000,
        &[1.0, std::f32::consts::FRAC_1_SQRT_2],
    ));
    // Subnormal inputs take the rescaling path.
    xs.extend((1..2000).map(|i| f32::from_bits(i * 4093)));
    check("log", &xs, log_on, f64::ln);
}

#[test]
fn sigmoid_meets_bound_while_result_is_normal() {
    let xs = sweep(-87.0, 87.0, 4_000_000, &[0.0]);
    check("sigmoid", &xs, sigmoid_on, |x| 1.0 / (1.0 + (-x).exp()));
}

#[test]
fn tanh_meets_bound_everywhere() {
    // 0.625 is where the odd polynomial hands over to the exponential formula.
    let mut xs = sweep(-20.0, 20.0, 4_000_000, &[0.0, 0.625, -0.625]);
    xs.extend(log_sweep(1e-38, 1.0, 100_000));
    check("tanh", &xs, tanh_on, f64::tanh);
}

#[test]
fn elu_meets_bound_including_near_zero() {
    // 0.5 is where expm1 switches from its Taylor polynomial to exp(x) - 1.
    let mut xs = sweep(-20.0, 20.0, 2_000_000, &[0.0, -0.5]);
    xs.extend(log_sweep(1e-38, 1.0, 100_000).into_iter().map(|x| -x));
    let alpha = 1.0;
    check(
        "elu",
        &xs,
        |isa, x, y| elu_on(isa, x, alpha, y),
        |x| if x > 0.0 { x } else { x.exp_m1() },
    );
}

#[test]
fn pow_meets_bound_over_bases_and_exponents() {
    let bases = log_sweep(1e-3, 1e3, 200_000);
    // Exponents every 1/8 over [-4, 4], including the exact shortcuts 0, 1, 2 and -1.
    for step in -32..=32 {
        let p = step as f32 / 8.0;
        check(
            &format!("pow(x, {p})"),
            &bases,
            |isa, x, y| pow_on(isa, x, p, y),
            |x| x.powf(f64::from(p)),
        );
    }
}

#[test]
fn special_values_follow_ieee() {
    let xs = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        -1.0,
        200.0,
        -200.0,
    ];
    for isa in common::isas() {
        let mut y = [0.0; 8];
        exp_on(isa, &xs, &mut y).unwrap();
        assert!(y[0].is_nan());
        // e^inf = inf, e^-inf = 0, e^±0 = 1, e^200 overflows, e^-200 underflows to 0.
        assert_eq!(
            &y[1..],
            &[
                f32::INFINITY,
                0.0,
                1.0,
                1.0,
                (-1.0f32).exp(),
                f32::INFINITY,
                0.0
            ]
        );

        log_on(isa, &xs, &mut y).unwrap();
        // ln NaN = NaN, ln inf = inf, ln of a negative number is NaN, ln ±0 = -inf.
        assert!(y[0].is_nan() && y[2].is_nan() && y[5].is_nan());
        assert_eq!(y[1], f32::INFINITY);
        assert_eq!((y[3], y[4]), (f32::NEG_INFINITY, f32::NEG_INFINITY));

        sigmoid_on(isa, &xs, &mut y).unwrap();
        // σ(±inf) = 1 / 0, σ(0) = 1/2, σ(-200) ≈ e^-200 is below the smallest subnormal.
        assert!(y[0].is_nan());
        assert_eq!((y[1], y[2], y[3], y[6], y[7]), (1.0, 0.0, 0.5, 1.0, 0.0));

        tanh_on(isa, &xs, &mut y).unwrap();
        assert!(y[0].is_nan());
        assert_eq!((y[1], y[2], y[6], y[7]), (1.0, -1.0, 1.0, -1.0));
        // tanh keeps the sign of zero.
        assert_eq!(
            (y[3].to_bits(), y[4].to_bits()),
            (0.0f32.to_bits(), (-0.0f32).to_bits())
        );
    }
}
