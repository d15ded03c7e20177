//! Elementwise math: `pow`, `exp`, `log`, `sqrt`, `abs`, `clamp`. Each forward is a kernel
//! `f` and each backward the kernel's `df` (see `ventral_kernels::elementwise`).

use std::sync::Arc;

use ventral_kernels::elementwise as k;

use crate::error::Result;
use crate::tensor::Tensor;

/// A kernel's derivative: `(x, y, dy, dx)`, given the forward input and output.
pub(crate) type Derivative =
    dyn Fn(&[f32], &[f32], &[f32], &mut [f32]) -> ventral_kernels::Result<()> + Send + Sync;

impl Tensor {
    /// Records an elementwise op: `forward(x, y)` fills the output, `derivative(x, y, dy, dx)`
    /// its gradient. Saves the input tensor and the output values for the backward.
    pub(crate) fn unary(
        &self,
        op: &'static str,
        forward: impl FnOnce(&[f32], &mut [f32]) -> ventral_kernels::Result<()>,
        derivative: Box<Derivative>,
    ) -> Result<Tensor> {
        let mut out = vec![0.0; self.numel()];
        forward(&self.data(), &mut out)?;
        let y = Arc::new(out);
        let (x, ys) = (self.clone(), y.clone());
        Tensor::record(op, y, self.shape().clone(), &[self], move |ctx| {
            let mut dx = vec![0.0; ctx.grad().len()];
            derivative(&x.data(), &ys, ctx.grad(), &mut dx)?;
            Ok(vec![Some(dx)])
        })
    }

    /// `x^exponent` for a scalar exponent; `∂/∂x = exponent · x^(exponent - 1)`.
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// let x = Tensor::from_vec(vec![3.0], [1])?.with_grad();
    /// let g = x.pow(2.0)?.sum_all()?.backward()?;
    /// assert_eq!(g.get(&x).unwrap().to_vec(), [6.0]); // 2 · 3
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn pow(&self, exponent: f32) -> Result<Tensor> {
        self.unary(
            "pow",
            |x, y| k::pow(x, exponent, y),
            Box::new(move |x, _, dy, dx| k::pow_backward(x, exponent, dy, dx)),
        )
    }

    /// `e^x`; `∂/∂x = e^x`, taken from the saved output.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only (overflow to inf).
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(
            "exp",
            k::exp,
            Box::new(|_, y, dy, dx| k::exp_backward(y, dy, dx)),
        )
    }

    /// Natural logarithm; `∂/∂x = 1 / x`.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only (NaN for negative inputs, -inf at 0).
    pub fn log(&self) -> Result<Tensor> {
        self.unary(
            "log",
            k::log,
            Box::new(|x, _, dy, dx| k::log_backward(x, dy, dx)),
        )
    }

    /// Square root; `∂/∂x = 1 / (2 √x)`, from the saved output.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(
            "sqrt",
            k::sqrt,
            Box::new(|_, y, dy, dx| k::sqrt_backward(y, dy, dx)),
        )
    }

    /// `|x|`; `∂/∂x = sign(x)`, and 0 at `x = 0` (PyTorch's choice of subgradient).
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(
            "abs",
            |x, y| {
                y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.abs());
                Ok(())
            },
            Box::new(|x, _, dy, dx| {
                for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
                    *d = if x > 0.0 {
                        g
                    } else if x < 0.0 {
                        -g
                    } else {
                        0.0
                    };
                }
                Ok(())
            }),
        )
    }

    /// `min(max(x, lo), hi)`; the gradient passes where `lo <= x <= hi`, else 0.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn clamp(&self, lo: f32, hi: f32) -> Result<Tensor> {
        self.unary(
            "clamp",
            |x, y| k::clamp(x, lo, hi, y),
            Box::new(move |x, _, dy, dx| k::clamp_backward(x, lo, hi, dy, dx)),
        )
    }
}
