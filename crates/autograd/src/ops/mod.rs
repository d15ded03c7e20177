//! The differentiable ops, one family per file: each op's forward, backward and doc example
//! sit together. Ops are methods on [`crate::Tensor`] (plus a few free functions such as
//! [`concat`] and the losses); there is no central list of ops to edit.

mod activation;
mod arith;
mod conv;
mod dropout;
mod loss;
mod matmul;
mod norm;
mod pool;
mod reduce;
mod shape_ops;
mod shortcut;
mod softmax;
mod unary;

pub use conv::Conv2dParams;
pub use dropout::Mode;
pub use loss::{MarginNormalization, cross_entropy, mse_loss, multi_margin_loss, nll_loss};
pub use norm::{BatchNormOptions, LrnParams, RunningStats};
pub use pool::{AvgPool2dParams, MaxPool2dParams};
pub use shape_ops::concat;

use crate::error::{Error, Result};
use crate::shape::{Shape, gather_strided};

/// The shape `a` and `b` broadcast to, or an error naming `op` and both shapes.
pub(crate) fn broadcast_shapes(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
    ventral_kernels::shape::broadcast_shape(op, a.dims(), b.dims())
        .map(Shape::from)
        .map_err(|_| Error::mismatch(op, a, b, "cannot be broadcast together"))
}

/// The backward of broadcasting: sums `grad` (of `grad_shape`) down to `shape`.
pub(crate) fn sum_to(grad: &[f32], grad_shape: &Shape, shape: &Shape) -> Result<Vec<f32>> {
    if grad_shape == shape {
        return Ok(grad.to_vec());
    }
    let mut out = vec![0.0; shape.numel()];
    ventral_kernels::elementwise::sum_to_shape(grad, grad_shape.dims(), shape.dims(), &mut out)?;
    Ok(out)
}

/// Copies `data` (row-major over `from`) broadcast up to `to` (which `from` broadcasts to).
pub(crate) fn expand(data: &[f32], from: &Shape, to: &Shape) -> Vec<f32> {
    if from == to {
        return data.to_vec();
    }
    gather_strided(data, to.dims(), &broadcast_strides(from, to), 0)
}

/// Strides that read a contiguous tensor of shape `from` as if broadcast to `to`: 0 along
/// broadcast (and missing leading) dimensions.
pub(crate) fn broadcast_strides(from: &Shape, to: &Shape) -> Vec<usize> {
    let own = from.contiguous_strides();
    let pad = to.rank() - from.rank();
    (0..to.rank())
        .map(|i| {
            if i < pad || from.dims()[i - pad] == 1 {
                0
            } else {
                own[i - pad]
            }
        })
        .collect()
}

/// Elementwise `out[i] = f(a[i], b[i])` into a new vector.
pub(crate) fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}
