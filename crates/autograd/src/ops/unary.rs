//! Elementwise math: `pow`, `exp`, `log`, `sqrt`, `abs`, `clamp`. Each forward is a kernel
//! `f` and each backward the kernel's `df` (see `ventral_kernels::elementwise`).

use std::sync::Arc;

use ventral_kernels::elementwise as k;

use crate::error::Result;
use crate::tensor::Tensor;

/// The forward array an elementwise backward reads.
enum Saved {
    Input(Tensor),
    Output(Arc<Vec<f32>>),
}

/// A kernel derivative `(saved, dy, dx)`: fills `dx` from the upstream gradient `dy` and one
/// saved forward array.
pub(crate) type Df =
    dyn Fn(&[f32], &[f32], &mut [f32]) -> ventral_kernels::Result<()> + Send + Sync;

/// What an elementwise op keeps for its backward, and the derivative that reads it.
///
/// Keeping only what the derivative needs matters for memory: in `conv → batch_norm → relu`
/// the batch-norm output is needed by nobody once ReLU has run, so ReLU saving its own output
/// (which the next layer saves anyway) instead of its input frees one activation per layer.
pub(crate) enum Derivative {
    /// The derivative reads the forward input `x`.
    OfInput(Box<Df>),
    /// The derivative reads the forward output `y`; the input is not kept alive.
    OfOutput(Box<Df>),
}

impl Tensor {
    /// Records an elementwise op: `forward(x, y)` fills the output, `derivative` its gradient.
    /// Saves only the array the derivative reads (see [`Derivative`]).
    pub(crate) fn unary(
        &self,
        op: &'static str,
        forward: impl FnOnce(&[f32], &mut [f32]) -> ventral_kernels::Result<()>,
        derivative: Derivative,
    ) -> Result<Tensor> {
        let mut out = ventral_kernels::elementwise::zeros(self.numel());
        forward(&self.data(), &mut out)?;
        let y = Arc::new(out);
        let (saved, df) = match derivative {
            Derivative::OfInput(df) => (Saved::Input(self.clone()), df),
            Derivative::OfOutput(df) => (Saved::Output(y.clone()), df),
        };
        Tensor::record(op, y, self.shape().clone(), &[self], move |ctx| {
            let mut dx = ventral_kernels::elementwise::zeros(ctx.grad().len());
            match &saved {
                Saved::Input(x) => df(&x.data(), ctx.grad(), &mut dx)?,
                Saved::Output(y) => df(y, ctx.grad(), &mut dx)?,
            }
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
            Derivative::OfInput(Box::new(move |x, dy, dx| {
                k::pow_backward(x, exponent, dy, dx)
            })),
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
            Derivative::OfOutput(Box::new(k::exp_backward)),
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
            Derivative::OfInput(Box::new(k::log_backward)),
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
            Derivative::OfOutput(Box::new(k::sqrt_backward)),
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
            Derivative::OfInput(Box::new(|x, dy, dx| {
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
            })),
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
            Derivative::OfInput(Box::new(move |x, dy, dx| {
                k::clamp_backward(x, lo, hi, dy, dx)
            })),
        )
    }
}
