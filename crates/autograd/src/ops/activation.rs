//! Activations: `relu`, `add_relu` (a residual sum and its ReLU), `leaky_relu`, `prelu`,
//! `elu`, `sigmoid`, `tanh`, `maxout`.
//!
//! The first five of the kernel ones are a kernel `f` and `df`; `prelu` and `maxout` are
//! composed from other ops, so their gradients come for free.

use std::sync::Arc;

use ventral_kernels::elementwise as k;

use super::unary::Derivative;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;

impl Tensor {
    /// `max(x, 0)`; the gradient passes where `x > 0` (0 at `x = 0`, as PyTorch).
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// let x = Tensor::from_vec(vec![-1.0, 2.0], [2])?.with_grad();
    /// let g = x.relu()?.sum_all()?.backward()?;
    /// assert_eq!(g.get(&x).unwrap().to_vec(), [0.0, 1.0]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(
            "relu",
            k::relu,
            // y > 0 exactly where x > 0, so the output (kept by the next layer anyway) suffices.
            Derivative::OfOutput(Box::new(k::relu_backward)),
        )
    }

    /// `relu(self + other)` as one op, for a residual block's sum and the ReLU after it: one
    /// pass over memory forward and one backward, the same bits as [`Tensor::add`] then
    /// [`Tensor::relu`]. Operands of different shapes are broadcast by running the two ops.
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// let a = Tensor::from_vec(vec![1.0, -3.0], [2])?.with_grad();
    /// let b = Tensor::from_vec(vec![0.5, 1.0], [2])?;
    /// let y = a.add_relu(&b)?;
    /// assert_eq!(y.to_vec(), [1.5, 0.0]);
    /// let g = y.sum_all()?.backward()?;
    /// assert_eq!(g.get(&a).unwrap().to_vec(), [1.0, 0.0]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] naming both shapes if they cannot broadcast.
    pub fn add_relu(&self, other: &Tensor) -> Result<Tensor> {
        if self.shape() != other.shape() {
            return self.add(other)?.relu();
        }
        // Written without clearing: the sums of a training step are megabytes each.
        let y = Arc::new(k::add_relu_new(&self.data(), &other.data())?);
        let saved = y.clone();
        Tensor::record(
            "add_relu",
            y,
            self.shape().clone(),
            &[self, other],
            move |ctx| {
                // y > 0 exactly where the sum is, so the output (kept anyway) gives the mask;
                // both operands get the same gradient, written in one pass.
                let g = ctx.grad();
                Ok(match (ctx.needs(0), ctx.needs(1)) {
                    (true, true) => {
                        let (first, second) = k::relu_backward_twice(&saved, g)?;
                        vec![Some(first), Some(second)]
                    }
                    (true, false) => vec![Some(k::relu_backward_new(&saved, g)?), None],
                    (false, true) => vec![None, Some(k::relu_backward_new(&saved, g)?)],
                    (false, false) => vec![None, None],
                })
            },
        )
    }

    /// `x` for `x > 0`, else `slope · x` (the lecture's `max(0.1x, x)` is `slope = 0.1`;
    /// PyTorch's default is 0.01).
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        self.unary(
            "leaky_relu",
            |x, y| k::leaky_relu(x, slope, y),
            Derivative::OfInput(Box::new(move |x, dy, dx| {
                k::leaky_relu_backward(x, slope, dy, dx)
            })),
        )
    }

    /// Parametric ReLU (He et al. 2015): `x` for `x > 0`, else `a · x` with a learned slope
    /// `weight` of shape `[1]` (shared) or `[C]` (one per channel, dimension 1 of `self`).
    /// Composed as `relu(x) - a · relu(-x)`, so `∂/∂a = min(x, 0)` summed over what shares it.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if `weight` is neither `[1]` nor `[C]`.
    pub fn prelu(&self, weight: &Tensor) -> Result<Tensor> {
        let n = weight.numel();
        let channels = self.dims().get(1).copied();
        let w = if weight.rank() == 1 && n == 1 {
            weight.clone()
        } else if weight.rank() == 1 && Some(n) == channels {
            // [C] -> [C, 1, …] so it broadcasts along dimension 1.
            let mut dims = vec![n];
            dims.extend(std::iter::repeat_n(1, self.rank() - 2));
            weight.reshape(dims)?
        } else {
            return Err(Error::mismatch(
                "prelu",
                self.shape(),
                weight.shape(),
                "do not fit: the weight must be [1] or [C] with C = dimension 1 of the input",
            ));
        };
        let pos = self.relu()?;
        let neg = self.neg()?.relu()?;
        pos.sub(&neg.mul(&w)?)
    }

    /// ELU (Clevert et al. 2016): `x` for `x > 0`, else `alpha · (e^x - 1)`.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn elu(&self, alpha: f32) -> Result<Tensor> {
        self.unary(
            "elu",
            |x, y| k::elu(x, alpha, y),
            Derivative::OfInput(Box::new(move |x, dy, dx| k::elu_backward(x, alpha, dy, dx))),
        )
    }

    /// The logistic sigmoid `1 / (1 + e^-x)`; `∂/∂x = y (1 - y)`.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(
            "sigmoid",
            k::sigmoid,
            Derivative::OfOutput(Box::new(k::sigmoid_backward)),
        )
    }

    /// Hyperbolic tangent; `∂/∂x = 1 - y²`.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(
            "tanh",
            k::tanh,
            Derivative::OfOutput(Box::new(k::tanh_backward)),
        )
    }

    /// Maxout (Goodfellow et al. 2013): dimension 1 of size `C · pieces` holds `pieces`
    /// consecutive linear pieces per output unit; the result keeps the max of each group,
    /// shape `[N, C, …]`. The gradient goes to the winning piece.
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// let z = Tensor::from_vec(vec![1.0, 5.0, -2.0, -3.0], [1, 4])?; // two units, two pieces
    /// assert_eq!(z.maxout(2)?.to_vec(), [5.0, -2.0]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if the rank is below 2, `pieces` is 0, or
    /// dimension 1 is not a multiple of `pieces`.
    pub fn maxout(&self, pieces: usize) -> Result<Tensor> {
        let dims = self.dims();
        if dims.len() < 2 || pieces == 0 || !dims[1].is_multiple_of(pieces) {
            return Err(Error::invalid(
                "maxout",
                format!(
                    "input {} needs rank >= 2 and dimension 1 a multiple of {pieces} pieces",
                    self.shape()
                ),
            ));
        }
        let mut grouped = vec![dims[0], dims[1] / pieces, pieces];
        grouped.extend_from_slice(&dims[2..]);
        self.reshape(Shape::from(grouped))?.max(&[2], false)
    }
}
