//! `softmax` and `log_softmax` along an axis (the kernels' numerically stable forms, with
//! their derivatives `dx = y (dy - Σ dy·y)` and `dx = dy - e^y Σ dy`).

use std::sync::Arc;

use ventral_kernels::softmax as k;

use crate::error::Result;
use crate::tensor::Tensor;

type Forward = fn(&[f32], &[usize], &mut [f32]) -> ventral_kernels::Result<()>;
type Backward = fn(&[f32], &[f32], &[usize], &mut [f32]) -> ventral_kernels::Result<()>;

impl Tensor {
    /// Softmax along `axis`: `e^{x_i} / Σ_j e^{x_j}`, shifted by the max so nothing
    /// overflows.
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// let p = Tensor::from_vec(vec![1000.0, 1000.0], [1, 2])?.softmax(1)?;
    /// assert_eq!(p.to_vec(), [0.5, 0.5]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `axis` is out of range.
    pub fn softmax(&self, axis: usize) -> Result<Tensor> {
        self.softmax_like("softmax", axis, k::softmax, k::softmax_backward)
    }

    /// Log-softmax along `axis`: `x_i - max - ln Σ_j e^{x_j - max}`, finite wherever the
    /// input is.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `axis` is out of range.
    pub fn log_softmax(&self, axis: usize) -> Result<Tensor> {
        self.softmax_like("log_softmax", axis, k::log_softmax, k::log_softmax_backward)
    }

    fn softmax_like(
        &self,
        op: &'static str,
        axis: usize,
        f: Forward,
        df: Backward,
    ) -> Result<Tensor> {
        self.shape().check_axis(op, axis)?;
        let last = self.rank() - 1;
        if axis != last {
            // Move the axis last (a view), normalise, move it back.
            return self
                .transpose(axis, last)?
                .softmax_like(op, last, f, df)?
                .transpose(axis, last);
        }
        let mut out = vec![0.0; self.numel()];
        f(&self.data(), self.dims(), &mut out)?;
        let y = Arc::new(out);
        let (ys, shape) = (y.clone(), self.shape().clone());
        Tensor::record(op, y, self.shape().clone(), &[self], move |ctx| {
            let mut dx = vec![0.0; ys.len()];
            df(&ys, ctx.grad(), shape.dims(), &mut dx)?;
            Ok(vec![Some(dx)])
        })
    }
}
