//! 2-D pooling over `[N, C, H, W]`: `max_pool2d`, `avg_pool2d`, `adaptive_avg_pool2d`, on the
//! pooling kernels (PyTorch semantics: padding, dilation, `ceil_mode`, `count_include_pad`).

use std::sync::Arc;

use ventral_kernels::pool as k;
pub use ventral_kernels::pool::{AvgPool2dParams, MaxPool2dParams};

use crate::error::{Error, Result};
use crate::graph::is_grad_enabled;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The input's shape as `[N, C, H, W]`, or an error naming `op`.
fn nchw(op: &'static str, t: &Tensor) -> Result<[usize; 4]> {
    t.dims().try_into().map_err(|_| {
        Error::invalid(
            op,
            format!("needs an [N, C, H, W] input, got shape {}", t.shape()),
        )
    })
}

impl Tensor {
    /// Max pooling; the gradient goes to the (first) maximum of each window, adding up where
    /// windows overlap.
    ///
    /// ```
    /// use ventral_autograd::{MaxPool2dParams, Tensor};
    ///
    /// let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([1, 1, 4, 4])?.with_grad();
    /// let y = x.max_pool2d(&MaxPool2dParams::square(2))?;
    /// assert_eq!(y.to_vec(), [5.0, 7.0, 13.0, 15.0]);
    /// let g = y.sum_all()?.backward()?;
    /// assert_eq!(g.get(&x).unwrap().to_vec()[5], 1.0);
    /// assert_eq!(g.get(&x).unwrap().to_vec()[0], 0.0);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if the input is not rank 4; the kernel's error
    /// (naming `max_pool2d` and the shape) for a configuration invalid for it.
    pub fn max_pool2d(&self, params: &MaxPool2dParams) -> Result<Tensor> {
        let shape = nchw("max_pool2d", self)?;
        if !(is_grad_enabled() && self.requires_grad()) {
            // Nothing will ask for a gradient: the values alone, without the argmax.
            let out = k::max_pool2d_values(&self.data(), shape, params)?;
            return Tensor::record(
                "max_pool2d",
                Arc::new(out.y),
                Shape::from(out.shape),
                &[self],
                // Not tracked (the same test as recording's), so never called.
                |_| {
                    Err(Error::invalid(
                        "max_pool2d",
                        "no indices were kept for a gradient",
                    ))
                },
            );
        }
        let out = k::max_pool2d(&self.data(), shape, params)?;
        let (indices, p) = (out.indices, *params);
        Tensor::record(
            "max_pool2d",
            Arc::new(out.y),
            Shape::from(out.shape),
            &[self],
            move |ctx| {
                Ok(vec![Some(k::max_pool2d_backward(
                    ctx.grad(),
                    &indices,
                    shape,
                    &p,
                )?)])
            },
        )
    }

    /// Average pooling; each output's gradient is shared equally by its window's divisor.
    ///
    /// # Errors
    /// As [`Tensor::max_pool2d`].
    pub fn avg_pool2d(&self, params: &AvgPool2dParams) -> Result<Tensor> {
        let shape = nchw("avg_pool2d", self)?;
        let out = k::avg_pool2d(&self.data(), shape, params)?;
        let p = *params;
        Tensor::record(
            "avg_pool2d",
            Arc::new(out.y),
            Shape::from(out.shape),
            &[self],
            move |ctx| Ok(vec![Some(k::avg_pool2d_backward(ctx.grad(), shape, &p)?)]),
        )
    }

    /// Adaptive average pooling to `output = (oh, ow)`: window `i` covers rows
    /// `[⌊iH/oh⌋, ⌈(i+1)H/oh⌉)` (likewise columns), so any input size maps to a fixed size.
    ///
    /// # Errors
    /// As [`Tensor::max_pool2d`] (an empty spatial size or output size is invalid).
    pub fn adaptive_avg_pool2d(&self, output: (usize, usize)) -> Result<Tensor> {
        let shape = nchw("adaptive_avg_pool2d", self)?;
        let out = k::adaptive_avg_pool2d(&self.data(), shape, output)?;
        Tensor::record(
            "adaptive_avg_pool2d",
            Arc::new(out.y),
            Shape::from(out.shape),
            &[self],
            move |ctx| {
                Ok(vec![Some(k::adaptive_avg_pool2d_backward(
                    ctx.grad(),
                    shape,
                    output,
                )?)])
            },
        )
    }
}
