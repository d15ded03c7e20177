//! Activation functions and their derivatives: ReLU, leaky ReLU, ELU, sigmoid, tanh.
//!
//! Conventions follow PyTorch: NaN inputs give NaN outputs; at kinks the derivative takes the
//! value PyTorch's backward uses (ReLU: 0 at x = 0; leaky ReLU: `slope` at x = 0; ELU:
//! `alpha` at x = 0).

use super::{backward_on, dispatch, math, unary_on};
use crate::error::Result;
use crate::isa::Isa;
use crate::shape::check_same_len;

/// ReLU, `y = max(x, 0)`, on the default instruction set; NaN stays NaN.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn relu(x: &[f32], y: &mut [f32]) -> Result<()> {
    relu_on(Isa::detect(), x, y)
}

/// [`relu`] on an explicit instruction set.
///
/// # Errors
/// As [`relu`], plus [`crate::KernelError::UnsupportedIsa`] if this CPU cannot run `isa`.
pub fn relu_on(isa: Isa, x: &[f32], y: &mut [f32]) -> Result<()> {
    unary_on(isa, "relu", x, y, relu_value)
}

/// ReLU of one value: 0 below zero, else the value itself (NaN and `-0.0` pass through, as
/// in PyTorch). Shared with the convolution's fused epilogue so both give the same bits.
#[inline(always)]
pub(crate) fn relu_value(v: f32) -> f32 {
    if v < 0.0 { 0.0 } else { v }
}

/// `y = relu(a + b)` for `a` and `b` of one length: a residual block's sum and the ReLU
/// after it in one pass over memory, with the bits of [`super::add`] then [`relu`]. Its
/// derivative is [`relu_backward`] of `y` (`y > 0` exactly where `a + b > 0`) for both.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `a`, `b` and `y` differ in length.
pub fn add_relu(a: &[f32], b: &[f32], y: &mut [f32]) -> Result<()> {
    add_relu_on(Isa::detect(), a, b, y)
}

/// [`add_relu`] on an explicit instruction set.
///
/// # Errors
/// As [`add_relu`], plus [`crate::KernelError::UnsupportedIsa`] if this CPU cannot run `isa`.
pub fn add_relu_on(isa: Isa, a: &[f32], b: &[f32], y: &mut [f32]) -> Result<()> {
    let isa = isa.check()?;
    check_same_len(
        "add_relu",
        &[("a", a.len()), ("b", b.len()), ("y", y.len())],
    )?;
    dispatch::par_map2(
        isa,
        a,
        b,
        y,
        #[inline(always)]
        |x, z| relu_value(x + z),
    );
    Ok(())
}

/// [`add_relu`] into a new vector, which it writes without clearing first: a training
/// step's residual sums are megabytes each, and clearing them cost as much as a pass of the
/// sum itself.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `a` and `b` differ in length.
pub fn add_relu_new(a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    add_relu_new_on(Isa::detect(), a, b)
}

/// [`add_relu_new`] on an explicit instruction set.
///
/// # Errors
/// As [`add_relu_new`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn add_relu_new_on(isa: Isa, a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    let isa = isa.check()?;
    check_same_len("add_relu", &[("a", a.len()), ("b", b.len())])?;
    let [y] = dispatch::par_map2_new(
        isa,
        a,
        b,
        #[inline(always)]
        |x, z| relu_value(x + z),
    );
    Ok(y)
}

/// [`relu_backward`] of `y = relu(x)` (or of [`add_relu`]'s output, which is positive
/// exactly where its sum is) into two new vectors holding the same gradient, in one pass:
/// the gradients of both operands of a residual sum.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `y` and `dy` differ in length.
pub fn relu_backward_twice(y: &[f32], dy: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
    relu_backward_twice_on(Isa::detect(), y, dy)
}

/// [`relu_backward_twice`] on an explicit instruction set.
///
/// # Errors
/// As [`relu_backward_twice`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn relu_backward_twice_on(isa: Isa, y: &[f32], dy: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
    let isa = isa.check()?;
    check_same_len("relu_backward", &[("y", y.len()), ("dy", dy.len())])?;
    let [first, second] = dispatch::par_map2_new(isa, y, dy, relu_grad_value);
    Ok((first, second))
}

/// [`relu_backward`] of `y = relu(x)` (or of [`add_relu`]'s output) into a new vector,
/// written without clearing it first.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `y` and `dy` differ in length.
pub fn relu_backward_new(y: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    relu_backward_new_on(Isa::detect(), y, dy)
}

/// [`relu_backward_new`] on an explicit instruction set.
///
/// # Errors
/// As [`relu_backward_new`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn relu_backward_new_on(isa: Isa, y: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    let isa = isa.check()?;
    check_same_len("relu_backward", &[("y", y.len()), ("dy", dy.len())])?;
    let [dx] = dispatch::par_map2_new(isa, y, dy, relu_grad_value);
    Ok(dx)
}

/// Derivative of [`relu`]: `dx = dy` where `x > 0`, else 0 (also at `x == 0`, as PyTorch).
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x`, `dy` and `dx` differ in length.
pub fn relu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    relu_backward_on(Isa::detect(), x, dy, dx)
}

/// [`relu_backward`] on an explicit instruction set.
///
/// # Errors
/// As [`relu_backward`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn relu_backward_on(isa: Isa, x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    backward_on(isa, "relu_backward", ("x", x), dy, dx, relu_grad_value)
}

/// ReLU's derivative at one element: `g` where the input (or the output) is above zero,
/// else 0, as PyTorch (0 at exactly 0, and for NaN).
#[inline(always)]
fn relu_grad_value(x: f32, g: f32) -> f32 {
    if x > 0.0 { g } else { 0.0 }
}

/// Leaky ReLU, `y = x` for `x > 0`, else `slope * x`: keeps a small gradient for negative
/// inputs so units cannot die. PyTorch's default `slope` is 0.01.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn leaky_relu(x: &[f32], slope: f32, y: &mut [f32]) -> Result<()> {
    leaky_relu_on(Isa::detect(), x, slope, y)
}

/// [`leaky_relu`] on an explicit instruction set.
///
/// # Errors
/// As [`leaky_relu`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn leaky_relu_on(isa: Isa, x: &[f32], slope: f32, y: &mut [f32]) -> Result<()> {
    unary_on(
        isa,
        "leaky_relu",
        x,
        y,
        #[inline(always)]
        move |v: f32| if v > 0.0 { v } else { v * slope },
    )
}

/// Derivative of [`leaky_relu`]: `dx = dy` where `x > 0`, else `slope * dy`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x`, `dy` and `dx` differ in length.
pub fn leaky_relu_backward(x: &[f32], slope: f32, dy: &[f32], dx: &mut [f32]) -> Result<()> {
    leaky_relu_backward_on(Isa::detect(), x, slope, dy, dx)
}

/// [`leaky_relu_backward`] on an explicit instruction set.
///
/// # Errors
/// As [`leaky_relu_backward`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn leaky_relu_backward_on(
    isa: Isa,
    x: &[f32],
    slope: f32,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    backward_on(
        isa,
        "leaky_relu_backward",
        ("x", x),
        dy,
        dx,
        #[inline(always)]
        move |x: f32, g: f32| if x > 0.0 { g } else { g * slope },
    )
}

/// ELU, `y = x` for `x > 0`, else `alpha * (e^x - 1)`: smooth for negative inputs, saturating
/// at `-alpha`. Uses an `expm1` that stays accurate near 0 (relative error ≤ 1e-6).
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn elu(x: &[f32], alpha: f32, y: &mut [f32]) -> Result<()> {
    elu_on(Isa::detect(), x, alpha, y)
}

/// [`elu`] on an explicit instruction set.
///
/// # Errors
/// As [`elu`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn elu_on(isa: Isa, x: &[f32], alpha: f32, y: &mut [f32]) -> Result<()> {
    unary_on(
        isa,
        "elu",
        x,
        y,
        #[inline(always)]
        move |v: f32| {
            if v > 0.0 { v } else { alpha * math::expm1(v) }
        },
    )
}

/// Derivative of [`elu`] from its input: `dx = dy` where `x > 0`, else `alpha * e^x * dy`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x`, `dy` and `dx` differ in length.
pub fn elu_backward(x: &[f32], alpha: f32, dy: &[f32], dx: &mut [f32]) -> Result<()> {
    elu_backward_on(Isa::detect(), x, alpha, dy, dx)
}

/// [`elu_backward`] on an explicit instruction set.
///
/// # Errors
/// As [`elu_backward`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn elu_backward_on(isa: Isa, x: &[f32], alpha: f32, dy: &[f32], dx: &mut [f32]) -> Result<()> {
    backward_on(
        isa,
        "elu_backward",
        ("x", x),
        dy,
        dx,
        #[inline(always)]
        move |x: f32, g: f32| {
            if x > 0.0 { g } else { alpha * math::exp(x) * g }
        },
    )
}

/// The logistic sigmoid, `y = 1 / (1 + e^-x)`, without overflow for any input; relative error
/// ≤ 1e-6 while the result is a normal float (x > -87.3).
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn sigmoid(x: &[f32], y: &mut [f32]) -> Result<()> {
    sigmoid_on(Isa::detect(), x, y)
}

/// [`sigmoid`] on an explicit instruction set.
///
/// # Errors
/// As [`sigmoid`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn sigmoid_on(isa: Isa, x: &[f32], y: &mut [f32]) -> Result<()> {
    unary_on(isa, "sigmoid", x, y, math::sigmoid)
}

/// Derivative of [`sigmoid`] from its output: `dx = dy * y * (1 - y)`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `y`, `dy` and `dx` differ in length.
pub fn sigmoid_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    sigmoid_backward_on(Isa::detect(), y, dy, dx)
}

/// [`sigmoid_backward`] on an explicit instruction set.
///
/// # Errors
/// As [`sigmoid_backward`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn sigmoid_backward_on(isa: Isa, y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    backward_on(
        isa,
        "sigmoid_backward",
        ("y", y),
        dy,
        dx,
        #[inline(always)]
        |y: f32, g: f32| g * y * (1.0 - y),
    )
}

/// Hyperbolic tangent, relative error ≤ 1e-6 for every input (exactly ±1 for |x| ≳ 9).
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x` and `y` differ in length.
pub fn tanh(x: &[f32], y: &mut [f32]) -> Result<()> {
    tanh_on(Isa::detect(), x, y)
}

/// [`tanh`] on an explicit instruction set.
///
/// # Errors
/// As [`tanh`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn tanh_on(isa: Isa, x: &[f32], y: &mut [f32]) -> Result<()> {
    unary_on(isa, "tanh", x, y, math::tanh)
}

/// Derivative of [`tanh`] from its output: `dx = dy * (1 - y^2)`.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `y`, `dy` and `dx` differ in length.
pub fn tanh_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    tanh_backward_on(Isa::detect(), y, dy, dx)
}

/// [`tanh_backward`] on an explicit instruction set.
///
/// # Errors
/// As [`tanh_backward`], plus [`crate::KernelError::UnsupportedIsa`].
pub fn tanh_backward_on(isa: Isa, y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    backward_on(
        isa,
        "tanh_backward",
        ("y", y),
        dy,
        dx,
        #[inline(always)]
        |y: f32, g: f32| g * (1.0 - y * y),
    )
}
