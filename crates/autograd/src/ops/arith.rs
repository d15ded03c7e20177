//! Arithmetic with NumPy broadcasting (`add`, `sub`, `mul`, `div`), scalar arithmetic and
//! negation, plus the operator sugar `&a + &b`.
//!
//! Broadcasting's backward is [`super::sum_to`]: an operand repeated along a dimension gets
//! the sum of the gradient along it.

use std::ops;
use std::sync::Arc;

use ventral_kernels::elementwise as k;

use super::{broadcast_shapes, sum_to, zip_map};
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::Tensor;

type BinaryKernel =
    fn(&[f32], &[usize], &[f32], &[usize], &mut [f32]) -> ventral_kernels::Result<()>;

/// Runs a broadcasting kernel and returns the output storage and shape.
fn forward(op: &'static str, a: &Tensor, b: &Tensor, f: BinaryKernel) -> Result<(Vec<f32>, Shape)> {
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    let mut out = vec![0.0; shape.numel()];
    f(&a.data(), a.dims(), &b.data(), b.dims(), &mut out)?;
    Ok((out, shape))
}

impl Tensor {
    /// `self + other`, broadcasting. `∂/∂a = ∂/∂b = 1`, each summed over the dimensions
    /// its operand was broadcast along.
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// let a = Tensor::from_vec(vec![1.0, 2.0], [2, 1])?;
    /// let b = Tensor::from_vec(vec![10.0, 20.0, 30.0], [3])?;
    /// assert_eq!(a.add(&b)?.to_vec(), [11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] naming both shapes if they cannot broadcast.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        let (out, shape) = forward("add", self, other, k::add)?;
        let (sa, sb, so) = (self.shape().clone(), other.shape().clone(), shape.clone());
        Tensor::record("add", Arc::new(out), shape, &[self, other], move |ctx| {
            let g = ctx.grad();
            Ok(vec![
                ctx.needs(0).then(|| sum_to(g, &so, &sa)).transpose()?,
                ctx.needs(1).then(|| sum_to(g, &so, &sb)).transpose()?,
            ])
        })
    }

    /// `self - other`, broadcasting. `∂/∂a = 1`, `∂/∂b = -1`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] naming both shapes if they cannot broadcast.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        let (out, shape) = forward("sub", self, other, k::sub)?;
        let (sa, sb, so) = (self.shape().clone(), other.shape().clone(), shape.clone());
        Tensor::record("sub", Arc::new(out), shape, &[self, other], move |ctx| {
            let g = ctx.grad();
            let gb = ctx
                .needs(1)
                .then(|| sum_to(g, &so, &sb).map(|v| v.into_iter().map(|x| -x).collect()))
                .transpose()?;
            Ok(vec![
                ctx.needs(0).then(|| sum_to(g, &so, &sa)).transpose()?,
                gb,
            ])
        })
    }

    /// `self * other` elementwise, broadcasting. `∂/∂a = b`, `∂/∂b = a`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] naming both shapes if they cannot broadcast.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        let (out, shape) = forward("mul", self, other, k::mul)?;
        let (a, b, so) = (self.clone(), other.clone(), shape.clone());
        Tensor::record("mul", Arc::new(out), shape, &[self, other], move |ctx| {
            let g = ctx.grad();
            // dL/da = sum_to(g * b), dL/db = sum_to(g * a).
            let scaled = |by: &Tensor, to: &Shape| -> Result<Vec<f32>> {
                let mut t = vec![0.0; so.numel()];
                k::mul(g, so.dims(), &by.data(), by.dims(), &mut t)?;
                sum_to(&t, &so, to)
            };
            Ok(vec![
                ctx.needs(0).then(|| scaled(&b, a.shape())).transpose()?,
                ctx.needs(1).then(|| scaled(&a, b.shape())).transpose()?,
            ])
        })
    }

    /// `self / other` elementwise, broadcasting (IEEE: `x / 0` is ±inf or NaN).
    /// `∂/∂a = 1 / b`, `∂/∂b = -a / b² = -y / b`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] naming both shapes if they cannot broadcast.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        let (out, shape) = forward("div", self, other, k::div)?;
        let y = Arc::new(out);
        let (sa, b, so, ys) = (
            self.shape().clone(),
            other.clone(),
            shape.clone(),
            y.clone(),
        );
        Tensor::record("div", y, shape, &[self, other], move |ctx| {
            let g = ctx.grad();
            let bd = b.data();
            let ga = ctx
                .needs(0)
                .then(|| -> Result<Vec<f32>> {
                    let mut t = vec![0.0; so.numel()];
                    k::div(g, so.dims(), &bd, b.dims(), &mut t)?;
                    sum_to(&t, &so, &sa)
                })
                .transpose()?;
            let gb = ctx
                .needs(1)
                .then(|| -> Result<Vec<f32>> {
                    let gy = zip_map(g, &ys, |g, y| -g * y);
                    let mut t = vec![0.0; so.numel()];
                    k::div(&gy, so.dims(), &bd, b.dims(), &mut t)?;
                    sum_to(&t, &so, b.shape())
                })
                .transpose()?;
            Ok(vec![ga, gb])
        })
    }

    /// `-self`.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn neg(&self) -> Result<Tensor> {
        self.affine("neg", |x| -x, |g| -g)
    }

    /// `self + s` for a scalar `s`; `∂/∂x = 1`.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine("add_scalar", move |x| x + s, |g| g)
    }

    /// `self - s` for a scalar `s`; `∂/∂x = 1`.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn sub_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine("sub_scalar", move |x| x - s, |g| g)
    }

    /// `s - self` for a scalar `s`; `∂/∂x = -1`.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn rsub_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine("rsub_scalar", move |x| s - x, |g| -g)
    }

    /// `self * s` for a scalar `s` (the `scale` kernel); `∂/∂x = s`.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn mul_scalar(&self, s: f32) -> Result<Tensor> {
        let mut out = vec![0.0; self.numel()];
        k::scale(&self.data(), s, &mut out)?;
        Tensor::record(
            "mul_scalar",
            Arc::new(out),
            self.shape().clone(),
            &[self],
            move |ctx| {
                let mut dx = vec![0.0; ctx.grad().len()];
                k::scale(ctx.grad(), s, &mut dx)?;
                Ok(vec![Some(dx)])
            },
        )
    }

    /// `self / s` for a scalar `s` (a true division, not a multiply by `1 / s`);
    /// `∂/∂x = 1 / s`.
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only (e.g. `s == 0`).
    pub fn div_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine("div_scalar", move |x| x / s, move |g| g / s)
    }

    /// An op whose derivative does not depend on `x`: `y = f(x)`, `dx = df(dy)`.
    fn affine(
        &self,
        op: &'static str,
        f: impl Fn(f32) -> f32,
        df: impl Fn(f32) -> f32 + Send + Sync + 'static,
    ) -> Result<Tensor> {
        let out: Vec<f32> = self.data().iter().map(|&x| f(x)).collect();
        Tensor::record(
            op,
            Arc::new(out),
            self.shape().clone(),
            &[self],
            move |ctx| Ok(vec![Some(ctx.grad().iter().map(|&g| df(g)).collect())]),
        )
    }
}

/// Unwraps an op result for operator sugar, panicking with the op's error message.
#[track_caller]
fn sugar(r: Result<Tensor>) -> Tensor {
    match r {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

macro_rules! binary_sugar {
    ($trait:ident, $method:ident, $scalar_method:ident) => {
        /// Operator sugar for the method of the same name.
        ///
        /// # Panics
        /// With the method's error message (naming the op and both shapes) if the shapes
        /// cannot broadcast; call the method to get a `Result` instead.
        impl ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                sugar(Tensor::$method(self, rhs))
            }
        }

        /// Operator sugar with a scalar right-hand side.
        ///
        /// # Panics
        /// Only in anomaly mode, with the anomaly's message.
        impl ops::$trait<f32> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f32) -> Tensor {
                sugar(Tensor::$scalar_method(self, rhs))
            }
        }
    };
}

binary_sugar!(Add, add, add_scalar);
binary_sugar!(Sub, sub, sub_scalar);
binary_sugar!(Mul, mul, mul_scalar);
binary_sugar!(Div, div, div_scalar);

/// `-&a`, sugar for [`Tensor::neg`].
///
/// # Panics
/// Only in anomaly mode, with the anomaly's message.
impl ops::Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        sugar(Tensor::neg(self))
    }
}
