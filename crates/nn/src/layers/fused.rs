//! Inference fusion: `Conv2d → BatchNorm2d → ReLU` run as one convolution.
//!
//! In eval mode a batch norm is an affine map per channel, so it folds into the
//! convolution before it ([`BatchNorm::folded_into`]: a cached copy of the weights, never
//! the parameters themselves), and the ReLU after it runs in the convolution kernel's
//! epilogue ([`Tensor::conv2d_relu`]). Three passes over the activations become one, and
//! neither the batch norm's nor the ReLU's output is allocated.
//!
//! Fusion applies only where it cannot change what a user asked for: no graph is being
//! recorded ([`ventral_autograd::no_grad`], as in evaluation and prediction), the batch
//! norm is in eval mode with running statistics, and nobody called [`without_fusion`]
//! (a summary that lists every layer's output does). The results equal the unfused pass up
//! to rounding (the folded weights round differently); with a ReLU but no batch norm they
//! are the same bits.
//!
//! A residual block's sum and the ReLU after it run as one op ([`add_relu`]) in training
//! and inference alike.
//!
//! In training (and whenever the inference fusion does not apply), `BatchNorm2d → ReLU`
//! runs as one op instead ([`bn_relu`], [`BatchNorm2d::forward_relu`]): one pass over memory
//! forward and one backward, with the same bits as the two layers apart, so it needs no
//! graph or mode condition, only that nobody called [`without_fusion`].
//!
//! [`BatchNorm::folded_into`]: super::BatchNorm::folded_into

use std::cell::Cell;

use ventral_autograd::{Tensor, is_grad_enabled};

use super::{BatchNorm2d, Conv2d};
use crate::error::Result;

thread_local! {
    /// How many [`without_fusion`] calls are running on this thread.
    static SUPPRESSED: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` with fusion off on this thread: every layer then runs (and can be observed)
/// on its own, e.g. for a per-layer summary or to compare against the fused pass.
pub fn without_fusion<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the count even if `f` panics.
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            SUPPRESSED.with(|s| s.set(s.get() - 1));
        }
    }
    SUPPRESSED.with(|s| s.set(s.get() + 1));
    let _restore = Restore;
    f()
}

/// Whether a forward pass on this thread may fuse layers now: no graph is recorded and no
/// [`without_fusion`] is running.
pub fn fusion_enabled() -> bool {
    !is_grad_enabled() && !suppressed()
}

/// Whether a [`without_fusion`] is running on this thread.
fn suppressed() -> bool {
    SUPPRESSED.with(Cell::get) > 0
}

/// `relu(bn(x))` as one op ([`BatchNorm2d::forward_relu`]), or `None` inside
/// [`without_fusion`], where the caller runs the two layers apart. The same bits either way,
/// in training and in evaluation, with or without a graph.
///
/// # Errors
/// The batch norm's input check or a kernel error, naming the batch norm (the caller adds
/// its path).
pub fn bn_relu(bn: &BatchNorm2d, x: &Tensor) -> Result<Option<Tensor>> {
    if suppressed() {
        return Ok(None);
    }
    bn.forward_relu(x).map(Some)
}

/// `relu(y + shortcut)` as one op ([`Tensor::add_relu`]), or `None` inside
/// [`without_fusion`], where the caller runs the sum and then the ReLU layer. The same bits
/// either way, with or without a graph.
///
/// # Errors
/// [`ventral_autograd::Error::ShapeMismatch`] if the shapes cannot broadcast.
pub fn add_relu(y: &Tensor, shortcut: &Tensor) -> Result<Option<Tensor>> {
    if suppressed() {
        return Ok(None);
    }
    Ok(Some(y.add_relu(shortcut)?))
}

/// `relu?(bn?(conv(x)))` as one fused convolution, or `None` where fusion does not apply
/// (see the module docs) and the caller should run the layers one by one. With `bn` absent
/// only a ReLU is fused (`relu` must then be set, else there is nothing to fuse).
///
/// # Errors
/// The convolution's input check (as [`Conv2d`]'s forward) or a kernel error; the caller
/// names the layer.
pub fn conv_bn_relu(
    conv: &Conv2d,
    bn: Option<&BatchNorm2d>,
    relu: bool,
    x: &Tensor,
) -> Result<Option<Tensor>> {
    if !fusion_enabled() {
        return Ok(None);
    }
    let folded = match bn {
        Some(bn) => match bn.folded_into(conv)? {
            Some((weight, bias)) => Some((weight, Some(bias))),
            None => return Ok(None),
        },
        None if relu => None,
        None => return Ok(None),
    };
    conv.check_input(x)?;
    let (weight, bias) = match &folded {
        Some((w, b)) => (w, b.as_ref()),
        None => (&conv.weight, conv.bias.as_ref()),
    };
    let y = if relu {
        x.conv2d_relu(weight, bias, conv.params)?
    } else {
        x.conv2d(weight, bias, conv.params)?
    };
    Ok(Some(y))
}
