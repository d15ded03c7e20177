//! Shape ops: `reshape`, `flatten`, `squeeze`, `unsqueeze`, `permute`, `transpose`, `t`,
//! `broadcast_to`, `narrow`, `split`, [`concat`], `index_select`, `gather`, `contiguous`.
//!
//! `reshape` of a contiguous tensor, `permute`, `transpose`, `broadcast_to` and `narrow` are
//! views: they share storage and only change strides or offset. Each backward puts the
//! gradient back into the input's layout (`broadcast_to`'s sums it, `narrow`'s pads it).

use std::sync::Arc;

use super::{broadcast_shapes, sum_to};
use crate::error::{Error, Result};
use crate::shape::{Shape, gather_strided};
use crate::tensor::Tensor;

/// `(outer, len, inner)` of `shape` around `axis`.
fn split_at(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

impl Tensor {
    /// The same elements in row-major order with a new shape of equal element count; a view
    /// (no copy) when `self` is contiguous.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] naming both shapes if the element counts differ.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::invalid(
                "reshape",
                format!(
                    "cannot reshape {} ({} elements) to {shape} ({} elements)",
                    self.shape(),
                    self.numel(),
                    shape.numel()
                ),
            ));
        }
        let back = |ctx: &crate::GradContext<'_>| Ok(vec![Some(ctx.grad().to_vec())]);
        if self.is_contiguous() {
            let strides = shape.contiguous_strides();
            let (_, offset) = self.storage();
            Ok(Tensor::record_view(
                "reshape", self, shape, strides, offset, back,
            ))
        } else {
            Tensor::record("reshape", Arc::new(self.to_vec()), shape, &[self], back)
        }
    }

    /// Merges dimensions `start..=end` into one.
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// let x = Tensor::zeros([2, 3, 4, 5])?;
    /// assert_eq!(x.flatten(1, 3)?.dims(), [2, 60]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] unless `start <= end < rank`.
    pub fn flatten(&self, start: usize, end: usize) -> Result<Tensor> {
        if start > end || end >= self.rank() {
            return Err(Error::invalid(
                "flatten",
                format!(
                    "dimensions {start}..={end} are not a range of shape {}",
                    self.shape()
                ),
            ));
        }
        let d = self.dims();
        let mut dims = d[..start].to_vec();
        dims.push(d[start..=end].iter().product());
        dims.extend_from_slice(&d[end + 1..]);
        self.reshape(dims)
    }

    /// Removes dimension `axis`, which must have size 1.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `axis` is out of range or not of size 1.
    pub fn squeeze(&self, axis: usize) -> Result<Tensor> {
        self.shape().check_axis("squeeze", axis)?;
        if self.dims()[axis] != 1 {
            return Err(Error::invalid(
                "squeeze",
                format!("axis {axis} of shape {} is not of size 1", self.shape()),
            ));
        }
        self.reshape(self.shape().reduced(axis, false))
    }

    /// Inserts a dimension of size 1 at `axis` (`0..=rank`).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `axis > rank`.
    pub fn unsqueeze(&self, axis: usize) -> Result<Tensor> {
        if axis > self.rank() {
            return Err(Error::invalid(
                "unsqueeze",
                format!("axis {axis} is out of range for shape {}", self.shape()),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims.insert(axis, 1);
        self.reshape(dims)
    }

    /// Reorders dimensions: result dimension `i` is input dimension `order[i]`. A view.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `order` is not a permutation of `0..rank`.
    pub fn permute(&self, order: &[usize]) -> Result<Tensor> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        let valid = order.len() == rank
            && order
                .iter()
                .all(|&o| o < rank && !std::mem::replace(&mut seen[o], true));
        if !valid {
            return Err(Error::invalid(
                "permute",
                format!(
                    "{order:?} is not a permutation of the axes of shape {}",
                    self.shape()
                ),
            ));
        }
        let dims: Vec<usize> = order.iter().map(|&o| self.dims()[o]).collect();
        let strides: Vec<usize> = order.iter().map(|&o| self.strides()[o]).collect();
        let (_, offset) = self.storage();
        let mut inverse = vec![0; rank];
        for (i, &o) in order.iter().enumerate() {
            inverse[o] = i;
        }
        let in_shape = self.shape().clone();
        let out_shape = Shape::from(dims);
        let out_strides = out_shape.contiguous_strides();
        Ok(Tensor::record_view(
            "permute",
            self,
            out_shape,
            strides,
            offset,
            move |ctx| {
                // Input axis a sits at result axis inverse[a].
                let s: Vec<usize> = inverse.iter().map(|&i| out_strides[i]).collect();
                Ok(vec![Some(gather_strided(
                    ctx.grad(),
                    in_shape.dims(),
                    &s,
                    0,
                ))])
            },
        ))
    }

    /// Swaps dimensions `a` and `b`. A view.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if either axis is out of range.
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        self.shape().check_axis("transpose", a)?;
        self.shape().check_axis("transpose", b)?;
        let mut order: Vec<usize> = (0..self.rank()).collect();
        order.swap(a, b);
        self.permute(&order)
    }

    /// The transpose of a matrix (swaps the last two dimensions). A view.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if the rank is below 2.
    pub fn t(&self) -> Result<Tensor> {
        let r = self.rank();
        if r < 2 {
            return Err(Error::invalid(
                "t",
                format!("needs rank >= 2, got shape {}", self.shape()),
            ));
        }
        self.transpose(r - 2, r - 1)
    }

    /// This tensor repeated (NumPy broadcasting) to `shape`. A view with stride 0 along the
    /// repeated dimensions; the backward sums the gradient over them.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if `self` does not broadcast to `shape`.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let target = shape.into();
        let full = broadcast_shapes("broadcast_to", self.shape(), &target)?;
        if full != target {
            return Err(Error::mismatch(
                "broadcast_to",
                self.shape(),
                &target,
                "do not fit: the lhs cannot be broadcast to the rhs",
            ));
        }
        let pad = target.rank() - self.rank();
        let strides: Vec<usize> = (0..target.rank())
            .map(|i| {
                if i < pad || self.dims()[i - pad] == 1 {
                    0
                } else {
                    self.strides()[i - pad]
                }
            })
            .collect();
        let (_, offset) = self.storage();
        let (from, to) = (self.shape().clone(), target.clone());
        Ok(Tensor::record_view(
            "broadcast_to",
            self,
            target,
            strides,
            offset,
            move |ctx| Ok(vec![Some(sum_to(ctx.grad(), &to, &from)?)]),
        ))
    }

    /// Elements `start..start + len` along `axis`. A view; the backward pads the gradient
    /// with zeros.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if the axis or range is out of bounds.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        self.shape().check_axis("narrow", axis)?;
        if start.checked_add(len).is_none_or(|e| e > self.dims()[axis]) {
            return Err(Error::invalid(
                "narrow",
                format!(
                    "range {start}..{} of axis {axis} is outside shape {}",
                    start.saturating_add(len),
                    self.shape()
                ),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims[axis] = len;
        let (_, offset) = self.storage();
        let offset = offset + start * self.strides()[axis];
        let in_shape = self.shape().clone();
        let (outer, full, inner) = split_at(in_shape.dims(), axis);
        Ok(Tensor::record_view(
            "narrow",
            self,
            Shape::from(dims),
            self.strides().to_vec(),
            offset,
            move |ctx| {
                let mut dx = vec![0.0; in_shape.numel()];
                let g = ctx.grad();
                let block = len * inner;
                for o in 0..outer {
                    dx[(o * full + start) * inner..][..block]
                        .copy_from_slice(&g[o * block..][..block]);
                }
                Ok(vec![Some(dx)])
            },
        ))
    }

    /// Splits along `axis` into consecutive pieces of the given sizes (which must add up to
    /// the axis length). Views.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if the sizes do not add up to the axis length.
    pub fn split(&self, sizes: &[usize], axis: usize) -> Result<Vec<Tensor>> {
        self.shape().check_axis("split", axis)?;
        if sizes.iter().sum::<usize>() != self.dims()[axis] {
            return Err(Error::invalid(
                "split",
                format!(
                    "sizes {sizes:?} do not add up to axis {axis} of shape {}",
                    self.shape()
                ),
            ));
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let piece = self.narrow(axis, start, len);
                start += len;
                piece
            })
            .collect()
    }

    /// The slices at `indices` along `axis`, in that order (repeats allowed); the backward
    /// adds each slice's gradient back at its index.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if the axis or an index is out of range.
    pub fn index_select(&self, axis: usize, indices: &[usize]) -> Result<Tensor> {
        self.shape().check_axis("index_select", axis)?;
        let (outer, len, inner) = split_at(self.dims(), axis);
        if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
            return Err(Error::invalid(
                "index_select",
                format!(
                    "index {bad} is out of range for axis {axis} of shape {}",
                    self.shape()
                ),
            ));
        }
        let x = self.data();
        let mut out = Vec::with_capacity(outer * indices.len() * inner);
        for o in 0..outer {
            for &i in indices {
                out.extend_from_slice(&x[(o * len + i) * inner..][..inner]);
            }
        }
        let mut dims = self.dims().to_vec();
        dims[axis] = indices.len();
        let idx = indices.to_vec();
        let n = self.numel();
        Tensor::record(
            "index_select",
            Arc::new(out),
            Shape::from(dims),
            &[self],
            move |ctx| {
                let g = ctx.grad();
                let mut dx = vec![0.0; n];
                for o in 0..outer {
                    for (j, &i) in idx.iter().enumerate() {
                        let src = &g[(o * idx.len() + j) * inner..][..inner];
                        let dst = &mut dx[(o * len + i) * inner..][..inner];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    }
                }
                Ok(vec![Some(dx)])
            },
        )
    }

    /// `torch.gather`: `out[.., j, ..] = self[.., index[.., j, ..], ..]` along `axis`, with
    /// `index` row-major over `index_shape`, which equals `self`'s shape except along `axis`.
    /// Picking the logit of each label: `logits.gather(1, &labels, [n, 1])`.
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// let logits = Tensor::from_vec(vec![0.1, 0.9, 0.7, 0.3], [2, 2])?;
    /// assert_eq!(logits.gather(1, &[1, 0], [2, 1])?.to_vec(), [0.9, 0.7]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if `index_shape` does not fit; `InvalidArgument` if
    /// an index is out of range.
    pub fn gather(
        &self,
        axis: usize,
        index: &[usize],
        index_shape: impl Into<Shape>,
    ) -> Result<Tensor> {
        let ishape = index_shape.into();
        self.shape().check_axis("gather", axis)?;
        let fits = ishape.rank() == self.rank()
            && (0..self.rank()).all(|d| d == axis || ishape.dims()[d] == self.dims()[d])
            && ishape.numel() == index.len();
        if !fits {
            return Err(Error::mismatch(
                "gather",
                self.shape(),
                &ishape,
                format!(
                    "do not fit: the index shape must equal the input shape except along axis \
                     {axis}, and hold {} indices",
                    index.len()
                ),
            ));
        }
        let (_, len, inner) = split_at(self.dims(), axis);
        let k = ishape.dims()[axis];
        if let Some(&bad) = index.iter().find(|&&i| i >= len) {
            return Err(Error::invalid(
                "gather",
                format!(
                    "index {bad} is out of range for axis {axis} of shape {}",
                    self.shape()
                ),
            ));
        }
        // Flat source position of every output element.
        let src: Vec<usize> = (0..index.len())
            .map(|p| {
                let (o, rest) = (p / (k * inner), p % (k * inner));
                let b = rest % inner;
                (o * len + index[p]) * inner + b
            })
            .collect();
        let x = self.data();
        let out: Vec<f32> = src.iter().map(|&s| x[s]).collect();
        let n = self.numel();
        Tensor::record("gather", Arc::new(out), ishape, &[self], move |ctx| {
            let mut dx = vec![0.0; n];
            for (&s, &g) in src.iter().zip(ctx.grad()) {
                dx[s] += g;
            }
            Ok(vec![Some(dx)])
        })
    }

    /// This tensor with its elements row-major and dense: itself if already so, else a copy
    /// (the gradient passes unchanged).
    ///
    /// # Errors
    /// [`crate::Error::Anomaly`] in anomaly mode only.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        Tensor::record(
            "contiguous",
            Arc::new(self.to_vec()),
            self.shape().clone(),
            &[self],
            |ctx| Ok(vec![Some(ctx.grad().to_vec())]),
        )
    }
}

/// Joins tensors along `axis`; all must have the same shape except along it. The backward
/// hands each input its slice of the gradient.
///
/// ```
/// use ventral_autograd::{concat, Tensor};
///
/// let a = Tensor::from_vec(vec![1.0, 2.0], [2, 1])?;
/// let b = Tensor::from_vec(vec![3.0, 4.0, 5.0, 6.0], [2, 2])?;
/// assert_eq!(concat(&[&a, &b], 1)?.to_vec(), [1.0, 3.0, 4.0, 2.0, 5.0, 6.0]);
/// # Ok::<(), ventral_autograd::Error>(())
/// ```
///
/// # Errors
/// [`crate::Error::ShapeMismatch`] naming the first two shapes that disagree;
/// `InvalidArgument` for no tensors or an axis out of range.
pub fn concat(tensors: &[&Tensor], axis: usize) -> Result<Tensor> {
    let Some(first) = tensors.first() else {
        return Err(Error::invalid("concat", "needs at least one tensor"));
    };
    first.shape().check_axis("concat", axis)?;
    for t in &tensors[1..] {
        let same = t.rank() == first.rank()
            && (0..first.rank()).all(|d| d == axis || t.dims()[d] == first.dims()[d]);
        if !same {
            return Err(Error::mismatch(
                "concat",
                first.shape(),
                t.shape(),
                format!("differ outside axis {axis}"),
            ));
        }
    }
    let (outer, _, inner) = split_at(first.dims(), axis);
    let lens: Vec<usize> = tensors.iter().map(|t| t.dims()[axis]).collect();
    let total: usize = lens.iter().sum();
    let datas: Vec<_> = tensors.iter().map(|t| t.data()).collect();
    let mut out = Vec::with_capacity(outer * total * inner);
    for o in 0..outer {
        for (d, &l) in datas.iter().zip(&lens) {
            out.extend_from_slice(&d[o * l * inner..][..l * inner]);
        }
    }
    let mut dims = first.dims().to_vec();
    dims[axis] = total;
    Tensor::record(
        "concat",
        Arc::new(out),
        Shape::from(dims),
        tensors,
        move |ctx| {
            let g = ctx.grad();
            let mut grads: Vec<Vec<f32>> = lens
                .iter()
                .map(|&l| Vec::with_capacity(outer * l * inner))
                .collect();
            for o in 0..outer {
                let mut at = o * total * inner;
                for (gi, &l) in grads.iter_mut().zip(&lens) {
                    gi.extend_from_slice(&g[at..at + l * inner]);
                    at += l * inner;
                }
            }
            Ok(grads
                .into_iter()
                .enumerate()
                .map(|(i, gi)| ctx.needs(i).then_some(gi))
                .collect())
        },
    )
}
