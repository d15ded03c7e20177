//! Shape arithmetic shared by the elementwise, reduction and softmax kernels: element counts,
//! NumPy broadcasting, and the `[outer, axis_len, inner]` view of one axis.
//!
//! Shapes are plain `&[usize]` in row-major (C) order, outermost dimension first. A rank-0
//! shape `[]` is a scalar with one element. Every check here returns
//! [`KernelError::ShapeMismatch`] naming the operation, so a caller's error says which op got
//! which shapes.

use crate::error::{KernelError, Result};

/// The number of elements of a tensor of `shape` (1 for the scalar shape `[]`).
///
/// # Errors
/// [`KernelError::ShapeMismatch`] naming `op` if the product overflows `usize`.
pub fn numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| KernelError::ShapeMismatch {
            op,
            detail: format!("shape {shape:?} has more elements than fit in usize"),
        })
}

/// The shape two operands broadcast to under NumPy rules.
///
/// Shapes are aligned at their last dimension; missing leading dimensions count as 1; two
/// aligned dimensions are compatible when they are equal or one of them is 1, and the result
/// takes the other one. So `[3, 1]` with `[1, 4]` gives `[3, 4]`, `[5, 4]` with `[4]` gives
/// `[5, 4]`, and a scalar `[]` broadcasts against anything.
///
/// # Errors
/// [`KernelError::ShapeMismatch`] naming `op`, both shapes and the first offending dimension
/// if they are incompatible.
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, slot) in out.iter_mut().enumerate() {
        let da = dim_aligned(a, rank, i);
        let db = dim_aligned(b, rank, i);
        *slot = match (da, db) {
            _ if da == db => da,
            (1, _) => db,
            (_, 1) => da,
            _ => {
                return Err(KernelError::ShapeMismatch {
                    op,
                    detail: format!(
                        "shapes {a:?} and {b:?} cannot be broadcast: dimension {i} of the \
                         result would need {da} == {db} or one of them == 1"
                    ),
                });
            }
        };
    }
    Ok(out)
}

/// Dimension `i` of `shape` after left-padding it with 1s to `rank` dimensions.
fn dim_aligned(shape: &[usize], rank: usize, i: usize) -> usize {
    let pad = rank - shape.len();
    if i < pad { 1 } else { shape[i - pad] }
}

/// Checks that a slice called `what` has exactly `expected` elements.
pub(crate) fn check_len(
    op: &'static str,
    what: &str,
    len: usize,
    expected: usize,
    shape: &[usize],
) -> Result<()> {
    if len == expected {
        Ok(())
    } else {
        Err(KernelError::ShapeMismatch {
            op,
            detail: format!("{what} has {len} elements, but shape {shape:?} needs {expected}"),
        })
    }
}

/// Checks that two same-shape operands of a flat elementwise op have equal lengths.
pub(crate) fn check_same_len(op: &'static str, names: &[(&str, usize)]) -> Result<()> {
    let first = names.first().map_or(0, |&(_, len)| len);
    if names.iter().all(|&(_, len)| len == first) {
        return Ok(());
    }
    let listed: Vec<String> = names
        .iter()
        .map(|(name, len)| format!("{name} has {len}"))
        .collect();
    Err(KernelError::ShapeMismatch {
        op,
        detail: format!("slices must have equal lengths, but {}", listed.join(", ")),
    })
}

/// A tensor of `shape` seen as `[outer, axis_len, inner]` around one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AxisView {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Length of the axis.
    pub axis_len: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
}

impl AxisView {
    /// Splits `shape` around `axis`, checking the axis and that `len` matches the shape.
    pub(crate) fn new(op: &'static str, shape: &[usize], axis: usize, len: usize) -> Result<Self> {
        if axis >= shape.len() {
            return Err(KernelError::ShapeMismatch {
                op,
                detail: format!(
                    "axis {axis} is out of range for shape {shape:?} of rank {}",
                    shape.len()
                ),
            });
        }
        let total = numel(op, shape)?;
        check_len(op, "the input", len, total, shape)?;
        // With a zero-length dimension these products can exceed `total`, so they are checked too.
        let outer = numel(op, &shape[..axis])?;
        let inner = numel(op, &shape[axis + 1..])?;
        numel(op, &[outer, inner])?;
        Ok(AxisView {
            outer,
            axis_len: shape[axis],
            inner,
        })
    }

    /// Number of outputs of a reduction over the axis (checked not to overflow in `new`).
    pub(crate) fn outputs(self) -> usize {
        self.outer * self.inner
    }
}
