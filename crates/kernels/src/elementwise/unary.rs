//! Unary math and its derivatives: scale, exp, log, sqrt, pow with a scalar exponent, clamp.
//!
//! IEEE special values follow `std` (and PyTorch): `log 0 = -inf`, `log` of a negative number
//! and `sqrt` of one are NaN, NaN propagates.

use super::{backward_on, math, unary_on};
use crate::error::Result;
use crate::isa::Isa;

/// `y = alpha * x`. Its derivative is itself: `dx = scale(dy, alpha)`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn scale(x: &[f32], alpha: f32, y: &mut [f32]) -> Result<()> {
    scale_on(Isa::detect(), x, alpha, y)
}

/// [`scale`] on an explicit instruction set.
///
/// # Errors
/// As [`scale`], plus [`crate::KernelError::UnsupportedIsa`] if this CPU cannot run `isa`.
pub fn scale_on(isa: Isa, x: &[f32], alpha: f32, y: &mut [f32]) -> Result<()> {
    unary_on(
        isa,
        "scale",
        x,
        y,
        #[inline(always)]
        move |v| alpha * v,
    )
}

/// `y = e^x`, relative error ≤ 1e-6 for x in [-87, 88] (normal results); `inf` above ~88.72
/// and a subnormal or 0 below ~-87.3.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn exp(x: &[f32], y: &mut [f32]) -> Result<()> {
    exp_on(Isa::detect(), x, y)
}

/// [`exp`] on an explicit instruction set.
///
/// # Errors
/// As [`exp`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn exp_on(isa: Isa, x: &[f32], y: &mut [f32]) -> Result<()> {
    unary_on(isa, "exp", x, y, math::exp)
}

/// Derivative of [`exp`] from its output: `dx = dy * y`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `y`, `dy` and `dx` differ in length.
pub fn exp_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    exp_backward_on(Isa::detect(), y, dy, dx)
}

/// [`exp_backward`] on an explicit instruction set.
///
/// # Errors
/// As [`exp_backward`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn exp_backward_on(isa: Isa, y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    backward_on(
        isa,
        "exp_backward",
        ("y", y),
        dy,
        dx,
        #[inline(always)]
        |y: f32, g: f32| g * y,
    )
}

/// Natural logarithm, relative error ≤ 1e-6 for every positive input (tested on
/// [1e-30, 1e30] plus subnormals); `log 0 = -inf`, negative inputs give NaN.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn log(x: &[f32], y: &mut [f32]) -> Result<()> {
    log_on(Isa::detect(), x, y)
}

/// [`log`] on an explicit instruction set.
///
/// # Errors
/// As [`log`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn log_on(isa: Isa, x: &[f32], y: &mut [f32]) -> Result<()> {
    unary_on(isa, "log", x, y, math::ln)
}

/// Derivative of [`log`] from its input: `dx = dy / x`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x`, `dy` and `dx` differ in length.
pub fn log_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    log_backward_on(Isa::detect(), x, dy, dx)
}

/// [`log_backward`] on an explicit instruction set.
///
/// # Errors
/// As [`log_backward`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn log_backward_on(isa: Isa, x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    backward_on(
        isa,
        "log_backward",
        ("x", x),
        dy,
        dx,
        #[inline(always)]
        |x: f32, g: f32| g / x,
    )
}

/// Square root, correctly rounded (the hardware instruction).
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn sqrt(x: &[f32], y: &mut [f32]) -> Result<()> {
    sqrt_on(Isa::detect(), x, y)
}

/// [`sqrt`] on an explicit instruction set.
///
/// # Errors
/// As [`sqrt`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn sqrt_on(isa: Isa, x: &[f32], y: &mut [f32]) -> Result<()> {
    unary_on(
        isa,
        "sqrt",
        x,
        y,
        #[inline(always)]
        |v: f32| v.sqrt(),
    )
}

/// Derivative of [`sqrt`] from its output: `dx = dy / (2 y)` (PyTorch's formula).
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `y`, `dy` and `dx` differ in length.
pub fn sqrt_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    sqrt_backward_on(Isa::detect(), y, dy, dx)
}

/// [`sqrt_backward`] on an explicit instruction set.
///
/// # Errors
/// As [`sqrt_backward`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn sqrt_backward_on(isa: Isa, y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    backward_on(
        isa,
        "sqrt_backward",
        ("y", y),
        dy,
        dx,
        #[inline(always)]
        |y: f32, g: f32| g / (y + y),
    )
}

/// `y = x^exponent` for a scalar exponent, with `std`'s special cases (`x^0 = 1` even for
/// NaN; a negative base with a non-integer exponent gives NaN).
///
/// Exponents 0, 1, 2 and -1 take exact shortcuts (`1`, `x`, `x * x`, `1 / x`, each the
/// correctly rounded result); any other exponent is evaluated in f64 and rounded once, so
/// the relative error is ≤ 6e-8 whenever the result is a normal float (tested on bases in
/// [1e-3, 1e3] and exponents in [-4, 4]). That general path calls libm and is not vectorised.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn pow(x: &[f32], exponent: f32, y: &mut [f32]) -> Result<()> {
    pow_on(Isa::detect(), x, exponent, y)
}

/// [`pow`] on an explicit instruction set.
///
/// # Errors
/// As [`pow`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn pow_on(isa: Isa, x: &[f32], exponent: f32, y: &mut [f32]) -> Result<()> {
    // The shortcut is chosen once, outside the loop.
    match exponent {
        0.0 => unary_on(
            isa,
            "pow",
            x,
            y,
            #[inline(always)]
            |_| 1.0,
        ),
        1.0 => unary_on(
            isa,
            "pow",
            x,
            y,
            #[inline(always)]
            |v| v,
        ),
        2.0 => unary_on(
            isa,
            "pow",
            x,
            y,
            #[inline(always)]
            |v| v * v,
        ),
        -1.0 => unary_on(
            isa,
            "pow",
            x,
            y,
            #[inline(always)]
            |v| 1.0 / v,
        ),
        p => unary_on(
            isa,
            "pow",
            x,
            y,
            #[inline(always)]
            move |v| math::powf(v, p),
        ),
    }
}

/// Derivative of [`pow`] from its input: `dx = dy * exponent * x^(exponent - 1)`, evaluated in
/// f64; exactly 0 when `exponent == 0` (PyTorch masks that case so `x = 0` gives no NaN).
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x`, `dy` and `dx` differ in length.
pub fn pow_backward(x: &[f32], exponent: f32, dy: &[f32], dx: &mut [f32]) -> Result<()> {
    pow_backward_on(Isa::detect(), x, exponent, dy, dx)
}

/// [`pow_backward`] on an explicit instruction set.
///
/// # Errors
/// As [`pow_backward`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn pow_backward_on(
    isa: Isa,
    x: &[f32],
    exponent: f32,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let p = f64::from(exponent);
    backward_on(
        isa,
        "pow_backward",
        ("x", x),
        dy,
        dx,
        #[inline(always)]
        move |x: f32, g: f32| {
            if p == 0.0 {
                0.0
            } else {
                (f64::from(g) * p * f64::from(x).powf(p - 1.0)) as f32
            }
        },
    )
}

/// `y = min(max(x, lo), hi)`. NaN inputs stay NaN; a NaN bound is ignored; if `lo > hi`
/// every output is `hi` (PyTorch's rule). Never panics, unlike `f32::clamp`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn clamp(x: &[f32], lo: f32, hi: f32, y: &mut [f32]) -> Result<()> {
    clamp_on(Isa::detect(), x, lo, hi, y)
}

/// [`clamp`] on an explicit instruction set.
///
/// # Errors
/// As [`clamp`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn clamp_on(isa: Isa, x: &[f32], lo: f32, hi: f32, y: &mut [f32]) -> Result<()> {
    unary_on(
        isa,
        "clamp",
        x,
        y,
        #[inline(always)]
        move |v: f32| {
            let v = if v < lo { lo } else { v };
            if v > hi { hi } else { v }
        },
    )
}

/// Derivative of [`clamp`]: `dx = dy` where `lo <= x <= hi` (bounds included, as PyTorch),
/// else 0. A NaN bound is ignored, as in the forward pass.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x`, `dy` and `dx` differ in length.
pub fn clamp_backward(x: &[f32], lo: f32, hi: f32, dy: &[f32], dx: &mut [f32]) -> Result<()> {
    clamp_backward_on(Isa::detect(), x, lo, hi, dy, dx)
}

/// [`clamp_backward`] on an explicit instruction set.
///
/// # Errors
/// As [`clamp_backward`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn clamp_backward_on(
    isa: Isa,
    x: &[f32],
    lo: f32,
    hi: f32,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    backward_on(
        isa,
        "clamp_backward",
        ("x", x),
        dy,
        dx,
        #[inline(always)]
        move |x: f32, g: f32| {
            // Tested as "not below, not above" rather than `lo <= x && x <= hi` so that a
            // NaN bound lets the gradient through, as the forward pass ignores it.
            let (below, above) = (x < lo, x > hi);
            let inside = !below && !above && !x.is_nan();
            if inside { g } else { 0.0 }
        },
    )
}
