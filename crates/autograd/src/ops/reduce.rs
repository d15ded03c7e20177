//! Reductions: `sum`, `mean`, `max`, `min` along axes (with `keepdim`), `sum_all`,
//! `mean_all`, and the non-differentiable `argmax`.
//!
//! Sums accumulate in f64 in the kernels, so results do not depend on threads. `sum` and
//! `mean` send the gradient back to every element; `max` and `min` to the first extreme
//! element of each reduced slice (PyTorch's `max(dim)` rule).

use std::sync::Arc;

use ventral_kernels::reduce as k;

use super::expand;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Validates `axes` against `shape` (empty means every axis) and returns them sorted.
fn check_axes(op: &'static str, shape: &Shape, axes: &[usize]) -> Result<Vec<usize>> {
    let mut sorted: Vec<usize> = if axes.is_empty() {
        (0..shape.rank()).collect()
    } else {
        axes.to_vec()
    };
    sorted.sort_unstable();
    for w in sorted.windows(2) {
        if w[0] == w[1] {
            return Err(Error::invalid(
                op,
                format!("axis {} is listed twice for shape {shape}", w[0]),
            ));
        }
    }
    for &a in &sorted {
        shape.check_axis(op, a)?;
    }
    Ok(sorted)
}

/// The sum of `data` (of `shape`) over the sorted `axes`, and its keepdim shape.
fn sum_axes(data: &[f32], shape: &Shape, axes: &[usize]) -> Result<(Vec<f32>, Shape)> {
    if axes.len() == shape.rank() {
        let mut out = [0.0];
        k::sum(data, &[data.len()], 0, &mut out)?;
        return Ok((out.to_vec(), Shape::from(vec![1; shape.rank()])));
    }
    let mut cur = data.to_vec();
    let mut dims = shape.dims().to_vec();
    for &a in axes.iter().rev() {
        let n_out: usize = (0..dims.len())
            .filter(|&i| i != a)
            .map(|i| dims[i])
            .product();
        let mut out = vec![0.0; n_out];
        k::sum(&cur, &dims, a, &mut out)?;
        dims[a] = 1;
        cur = out;
    }
    Ok((cur, Shape::from(dims)))
}

/// The output shape: `keep` (with 1s) or with the reduced axes removed.
fn final_shape(keep: &Shape, axes: &[usize], keepdim: bool) -> Shape {
    if keepdim {
        return keep.clone();
    }
    Shape::from(
        keep.dims()
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect::<Vec<_>>(),
    )
}

impl Tensor {
    /// Sum over `axes` (every axis if empty); `keepdim` keeps them as size 1.
    /// `∂/∂x = 1` for every element.
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
    /// assert_eq!(x.sum(&[1], false)?.to_vec(), [6.0, 15.0]);
    /// assert_eq!(x.sum(&[0], true)?.dims(), [1, 3]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if an axis is out of range or repeated.
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.sum_like("sum", axes, keepdim, false)
    }

    /// Mean over `axes` (every axis if empty); `∂/∂x = 1 / count`.
    ///
    /// # Errors
    /// As [`Tensor::sum`].
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.sum_like("mean", axes, keepdim, true)
    }

    /// The sum of every element, as a scalar (shape `[]`).
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }

    /// The mean of every element, as a scalar (shape `[]`).
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[], false)
    }

    fn sum_like(
        &self,
        op: &'static str,
        axes: &[usize],
        keepdim: bool,
        mean: bool,
    ) -> Result<Tensor> {
        let axes = check_axes(op, self.shape(), axes)?;
        let (mut out, keep) = sum_axes(&self.data(), self.shape(), &axes)?;
        let count: usize = axes.iter().map(|&a| self.dims()[a]).product();
        if mean {
            let c = count as f32;
            out.iter_mut().for_each(|v| *v /= c);
        }
        let shape = final_shape(&keep, &axes, keepdim);
        let in_shape = self.shape().clone();
        Tensor::record(op, Arc::new(out), shape, &[self], move |ctx| {
            let mut g = expand(ctx.grad(), &keep, &in_shape);
            if mean {
                let c = count as f32;
                g.iter_mut().for_each(|v| *v /= c);
            }
            Ok(vec![Some(g)])
        })
    }

    /// Max over `axes` (every axis if empty), `keepdim` as in [`Tensor::sum`]. The gradient
    /// goes to the first maximal element of each reduced slice.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if an axis is out of range, repeated or empty.
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.extreme("max", axes, keepdim)
    }

    /// Min over `axes`, as [`Tensor::max`].
    ///
    /// # Errors
    /// As [`Tensor::max`].
    pub fn min(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.extreme("min", axes, keepdim)
    }

    fn extreme(&self, op: &'static str, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        let axes = check_axes(op, self.shape(), axes)?;
        let mut t = self.clone();
        for &a in axes.iter().rev() {
            t = t.extreme_axis(op, a)?;
        }
        if keepdim {
            Ok(t)
        } else {
            let shape = final_shape(t.shape(), &axes, false);
            t.reshape(shape)
        }
    }

    /// Max or min along one axis, keeping it as size 1.
    fn extreme_axis(&self, op: &'static str, axis: usize) -> Result<Tensor> {
        let dims = self.dims();
        if dims[axis] == 0 {
            return Err(Error::invalid(
                op,
                format!("axis {axis} of shape {} is empty", self.shape()),
            ));
        }
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product();
        let len = dims[axis];
        let mut values = vec![0.0; outer * inner];
        let mut idx = vec![0usize; outer * inner];
        let f = if op == "max" {
            k::max_argmax
        } else {
            k::min_argmin
        };
        f(&self.data(), dims, axis, &mut values, &mut idx)?;
        let shape = self.shape().reduced(axis, true);
        let n = self.numel();
        Tensor::record(op, Arc::new(values), shape, &[self], move |ctx| {
            let mut dx = vec![0.0; n];
            for (o, (&g, &i)) in ctx.grad().iter().zip(&idx).enumerate() {
                let (a, b) = (o / inner.max(1), o % inner.max(1));
                dx[(a * len + i) * inner + b] += g;
            }
            Ok(vec![Some(dx)])
        })
    }

    /// Index of the max along `axis` for every other position (first on ties); not
    /// differentiable. E.g. the predicted class of `[N, C]` logits is `argmax(1)`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `axis` is out of range or empty.
    pub fn argmax(&self, axis: usize) -> Result<Vec<usize>> {
        self.shape().check_axis("argmax", axis)?;
        if self.dims()[axis] == 0 {
            return Err(Error::invalid(
                "argmax",
                format!("axis {axis} of shape {} is empty", self.shape()),
            ));
        }
        let mut out = vec![0; self.numel() / self.dims()[axis]];
        k::argmax(&self.data(), self.dims(), axis, &mut out)?;
        Ok(out)
    }
}
