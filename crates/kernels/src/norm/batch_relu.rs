//! Training-mode batch normalisation fused with the ReLU after it, forward and backward.
//!
//! `conv → batch_norm → relu` is the building block of most CNNs, and at small channel
//! counts (ResNet-20: 16–64) the two memory-bound passes after the convolution cost a large
//! share of a training step. Fused, the forward pass writes `relu(bn(x))` straight from `x`
//! (the batch norm's own output is never stored), and the backward pass applies the ReLU's
//! mask (`y > 0`, read from the fused output) inside the batch norm's gradient sums and its
//! `dx` pass, so the masked gradient is never stored either.
//!
//! The arithmetic is that of [`batch_norm_train`] and [`batch_norm_backward_train`] in the
//! same order, with ReLU as [`crate::elementwise::relu`] computes it, so the results are
//! **bit-identical** to running the two ops one after the other, at any thread count and on
//! every instruction set.
//!
//! [`batch_norm_train`]: super::batch_norm_train
//! [`batch_norm_backward_train`]: super::batch_norm_backward_train

use super::batch::{affine_map, backward_train, train_stats};
use super::{BatchNormGrads, BatchNormParams, BatchNormTrainOutput, RunningStats};
use crate::conv::Epilogue;
use crate::error::Result;
use crate::isa::Isa;

/// `relu(batch_norm(x))` in training mode, on the default instruction set: the batch
/// statistics, running-statistics update and saved statistics of
/// [`super::batch_norm_train`], and an output `y = max(0, (x - μ) r w + b)` written in the same
/// pass that normalises. The saved statistics are those the backward
/// ([`batch_norm_relu_backward_train`]) needs, with `y` itself as the ReLU's mask.
///
/// ```
/// use ventral_kernels::norm::{batch_norm_relu_train, BatchNormParams};
///
/// // N = 2, C = 1: the channel holds [1, 3], mean 2, variance 1, normalised to [-1, 1].
/// let out = batch_norm_relu_train(&[1.0, 3.0], &[2, 1], None, None, None, BatchNormParams::new(0.0, 0.1))?;
/// assert_eq!(out.y, [0.0, 1.0]);
/// # Ok::<(), ventral_kernels::KernelError>(())
/// ```
///
/// # Errors
/// As [`super::batch_norm_train`]: [`crate::KernelError::ShapeMismatch`] if `x.len()` does not
/// match `shape`, the rank is below 2, a channel has fewer than 2 values, or `weight`, `bias`
/// or the running statistics do not have `C` elements.
pub fn batch_norm_relu_train(
    x: &[f32],
    shape: &[usize],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    running: Option<RunningStats<'_>>,
    params: BatchNormParams,
) -> Result<BatchNormTrainOutput> {
    batch_norm_relu_train_on(Isa::detect(), x, shape, weight, bias, running, params)
}

/// [`batch_norm_relu_train`] on an explicit instruction set (same bits on every one).
///
/// # Errors
/// As [`batch_norm_relu_train`], plus [`crate::KernelError::UnsupportedIsa`] if this CPU
/// cannot run `isa`.
pub fn batch_norm_relu_train_on(
    isa: Isa,
    x: &[f32],
    shape: &[usize],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    running: Option<RunningStats<'_>>,
    params: BatchNormParams,
) -> Result<BatchNormTrainOutput> {
    const OP: &str = "batch_norm_relu_train";
    let isa = isa.check()?;
    let (pl, mean, invstd) = train_stats(OP, isa, x, shape, (weight, bias), running, params)?;
    let y = affine_map(pl, isa, x, (weight, bias), (&mean, &invstd), Epilogue::Relu);
    Ok(BatchNormTrainOutput {
        y,
        save_mean: mean.iter().map(|&v| v as f32).collect(),
        save_invstd: invstd.iter().map(|&v| v as f32).collect(),
    })
}

/// Gradient of [`batch_norm_relu_train`] on the default instruction set: the ReLU's mask
/// (`y > 0`, from the fused output `y`) applied to `dy`, then the batch-norm backward of
/// [`super::batch_norm_backward_train`], in one pass for the sums and one for `dx`.
///
/// ```
/// use ventral_kernels::norm::{batch_norm_relu_backward_train, batch_norm_relu_train, BatchNormParams};
///
/// let (x, shape) = ([1.0, 3.0, 2.0, 6.0], [4, 1]);
/// let out = batch_norm_relu_train(&x, &shape, None, None, None, BatchNormParams::default())?;
/// // A gradient that reaches only where the ReLU was off changes nothing.
/// let dy: Vec<f32> = out.y.iter().map(|&y| if y > 0.0 { 0.0 } else { 1.0 }).collect();
/// let g = batch_norm_relu_backward_train(&dy, &out.y, &x, &shape, None, &out.save_mean, &out.save_invstd)?;
/// assert_eq!(g.dx, [0.0; 4]);
/// assert_eq!(g.dbias, [0.0]);
/// # Ok::<(), ventral_kernels::KernelError>(())
/// ```
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x.len()` does not match `shape`, `dy` or `y`
/// differ from `x` in length, or `weight`, `save_mean` or `save_invstd` do not have `C`
/// elements.
pub fn batch_norm_relu_backward_train(
    dy: &[f32],
    y: &[f32],
    x: &[f32],
    shape: &[usize],
    weight: Option<&[f32]>,
    save_mean: &[f32],
    save_invstd: &[f32],
) -> Result<BatchNormGrads> {
    batch_norm_relu_backward_train_on(
        Isa::detect(),
        dy,
        y,
        x,
        shape,
        weight,
        save_mean,
        save_invstd,
    )
}

/// [`batch_norm_relu_backward_train`] on an explicit instruction set (same bits on every
/// one).
///
/// # Errors
/// As [`batch_norm_relu_backward_train`], plus [`crate::KernelError::UnsupportedIsa`] if
/// this CPU cannot run `isa`.
#[allow(clippy::too_many_arguments)] // the fused op's operands, as the unfused pair takes them
pub fn batch_norm_relu_backward_train_on(
    isa: Isa,
    dy: &[f32],
    y: &[f32],
    x: &[f32],
    shape: &[usize],
    weight: Option<&[f32]>,
    save_mean: &[f32],
    save_invstd: &[f32],
) -> Result<BatchNormGrads> {
    backward_train(
        "batch_norm_relu_backward_train",
        isa.check()?,
        (dy, Some(y)),
        x,
        shape,
        weight,
        (save_mean, save_invstd),
    )
}
