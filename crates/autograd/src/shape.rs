//! [`Shape`]: the dimensions of a tensor, and the stride arithmetic of views.

use std::fmt;

use crate::error::{Error, Result};

/// The dimensions of a tensor, outermost first (row-major). `[]` is a scalar with one element.
///
/// Displays as `[2, 3]`, which is how every error message names a shape.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    /// The scalar shape `[]`.
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major strides of a contiguous tensor of this shape.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![0; self.0.len()];
        let mut s = 1;
        for (st, &d) in strides.iter_mut().zip(&self.0).rev() {
            *st = s;
            s *= d;
        }
        strides
    }

    /// Checks that `axis` is a dimension of this shape, naming `op` otherwise.
    pub(crate) fn check_axis(&self, op: &'static str, axis: usize) -> Result<()> {
        if axis < self.rank() {
            Ok(())
        } else {
            Err(Error::invalid(
                op,
                format!(
                    "axis {axis} is out of range for shape {self} of rank {}",
                    self.rank()
                ),
            ))
        }
    }

    /// The shape with `axis` set to 1 (`keepdim`) or removed.
    pub(crate) fn reduced(&self, axis: usize, keepdim: bool) -> Shape {
        let mut d = self.0.clone();
        if keepdim {
            d[axis] = 1;
        } else {
            d.remove(axis);
        }
        Shape(d)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}

impl From<&Vec<usize>> for Shape {
    fn from(v: &Vec<usize>) -> Self {
        Shape(v.clone())
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}

impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(v: &[usize; N]) -> Self {
        Shape(v.to_vec())
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

/// Copies the elements of a strided view (`shape`, `strides`, `offset` into `data`) into a
/// new row-major vector. Broadcast dimensions have stride 0.
pub(crate) fn gather_strided(
    data: &[f32],
    shape: &[usize],
    strides: &[usize],
    offset: usize,
) -> Vec<f32> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel);
    if numel == 0 {
        return out;
    }
    if shape.is_empty() {
        out.push(data[offset]);
        return out;
    }
    let rank = shape.len();
    let (inner_len, inner_stride) = (shape[rank - 1], strides[rank - 1]);
    let mut index = vec![0usize; rank - 1];
    let mut base = offset;
    loop {
        if inner_stride == 1 {
            out.extend_from_slice(&data[base..base + inner_len]);
        } else {
            out.extend((0..inner_len).map(|j| data[base + j * inner_stride]));
        }
        // Odometer over the outer dimensions.
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            index[d] += 1;
            base += strides[d];
            if index[d] < shape[d] {
                break;
            }
            base -= strides[d] * shape[d];
            index[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_transposed_view() {
        // A 2x3 row-major [[0,1,2],[3,4,5]] read as its 3x2 transpose (strides (1, 3)).
        let data = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let out = gather_strided(&data, &[3, 2], &[1, 3], 0);
        assert_eq!(out, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn display_and_strides() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.to_string(), "[2, 3, 4]");
        assert_eq!(s.contiguous_strides(), [12, 4, 1]);
        assert_eq!(Shape::scalar().numel(), 1);
    }
}
