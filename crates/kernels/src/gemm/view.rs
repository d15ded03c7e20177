//! Strided matrix views: the safe public face of GEMM.
//!
//! A view is a slice plus rows, columns and two strides, checked once when it is built, so the
//! kernels can index it without bounds checks. Row and column strides make a transpose free
//! ([`MatRef::t`]) and let a view address a sub-block or a padded layout.

use crate::error::{KernelError, Result};

/// The number of elements a `rows x cols` view with these strides reaches, or `None` on overflow.
fn span(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add((cols - 1).checked_mul(col_stride)?)?
        .checked_add(1)
}

fn check_span(
    op: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
) -> Result<()> {
    let out_of_bounds = |needed| KernelError::ViewOutOfBounds {
        op,
        rows,
        cols,
        row_stride,
        col_stride,
        needed,
        len,
    };
    match span(rows, cols, row_stride, col_stride) {
        Some(needed) if needed <= len => Ok(()),
        Some(needed) => Err(out_of_bounds(needed)),
        None => Err(out_of_bounds(usize::MAX)),
    }
}

/// Whether distinct index tuples map to distinct offsets, for axes given as
/// `(stride, count)`.
///
/// Axes of count 0 or 1 never move. Sorting the others by stride, offsets are distinct when
/// each stride steps past everything the smaller axes reach: `s_i > sum_{j < i} (n_j - 1) s_j`
/// (with `s_0 > 0`). This covers nested layouts (row-major, column-major, padded, and items of
/// a batch placed side by side); exotic interleavings it rejects are never needed here.
pub(crate) fn is_injective(axes: &[(usize, usize)]) -> bool {
    let mut moving: Vec<(usize, usize)> = axes.iter().copied().filter(|&(_, n)| n > 1).collect();
    moving.sort_unstable();
    let mut reach = 0usize;
    for (stride, count) in moving {
        if stride <= reach || stride == 0 {
            return false;
        }
        match (count - 1)
            .checked_mul(stride)
            .and_then(|r| r.checked_add(reach))
        {
            Some(r) => reach = r,
            None => return false,
        }
    }
    true
}

/// A read-only `rows x cols` matrix over a slice, with element `(i, j)` at
/// `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A view with explicit strides.
    ///
    /// # Errors
    /// [`KernelError::ViewOutOfBounds`] if the view would reach past the end of `data`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self> {
        check_span(
            "MatRef::new",
            data.len(),
            rows,
            cols,
            row_stride,
            col_stride,
        )?;
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// A dense row-major view (`row_stride = cols`, `col_stride = 1`).
    ///
    /// # Errors
    /// [`KernelError::ViewOutOfBounds`] if `data` has fewer than `rows * cols` elements.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// A dense column-major view (`row_stride = 1`, `col_stride = rows`).
    ///
    /// # Errors
    /// [`KernelError::ViewOutOfBounds`] if `data` has fewer than `rows * cols` elements.
    pub fn col_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, 1, rows)
    }

    /// The transpose, without copying: rows and columns swap, and so do the strides.
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Distance in elements between consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Distance in elements between consecutive columns.
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// Element `(i, j)`.
    ///
    /// # Panics
    /// If `i >= rows` or `j >= cols`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        assert!(
            i < self.rows && j < self.cols,
            "MatRef::get: ({i}, {j}) outside {}x{}",
            self.rows,
            self.cols
        );
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// The underlying slice.
    pub(crate) fn data(&self) -> &'a [f32] {
        self.data
    }

    /// The sub-view of `rows x cols` starting at `(i, j)`; the caller keeps it inside `self`.
    pub(crate) fn block(&self, i: usize, j: usize, rows: usize, cols: usize) -> MatRef<'a> {
        debug_assert!(i + rows <= self.rows && j + cols <= self.cols);
        let start = if rows == 0 || cols == 0 {
            0
        } else {
            i * self.row_stride + j * self.col_stride
        };
        MatRef {
            data: &self.data[start.min(self.data.len())..],
            rows,
            cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        }
    }
}

/// A writable `rows x cols` matrix over a slice, with element `(i, j)` at
/// `data[i * row_stride + j * col_stride]`. Its strides never make two elements alias.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A writable view with explicit strides.
    ///
    /// # Errors
    /// [`KernelError::ViewOutOfBounds`] if the view would reach past the end of `data`;
    /// [`KernelError::OverlappingOutput`] if two elements would share memory.
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self> {
        check_span(
            "MatMut::new",
            data.len(),
            rows,
            cols,
            row_stride,
            col_stride,
        )?;
        if !is_injective(&[(row_stride, rows), (col_stride, cols)]) {
            return Err(KernelError::OverlappingOutput {
                op: "MatMut::new",
                rows,
                cols,
                row_stride,
                col_stride,
            });
        }
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// A dense row-major writable view.
    ///
    /// # Errors
    /// [`KernelError::ViewOutOfBounds`] if `data` has fewer than `rows * cols` elements.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// A dense column-major writable view.
    ///
    /// # Errors
    /// [`KernelError::ViewOutOfBounds`] if `data` has fewer than `rows * cols` elements.
    pub fn col_major(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, 1, rows)
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// A shorter-lived writable view of the same matrix.
    pub fn reborrow(&mut self) -> MatMut<'_> {
        MatMut {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        }
    }

    /// A read-only view of the same matrix.
    pub fn as_ref(&self) -> MatRef<'_> {
        MatRef {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Distance in elements between consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Distance in elements between consecutive columns.
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// Element `(i, j)`.
    ///
    /// # Panics
    /// If `i >= rows` or `j >= cols`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.as_ref().get(i, j)
    }

    /// Sets element `(i, j)`.
    ///
    /// # Panics
    /// If `i >= rows` or `j >= cols`.
    pub fn set(&mut self, i: usize, j: usize, value: f32) {
        assert!(
            i < self.rows && j < self.cols,
            "MatMut::set: ({i}, {j}) outside {}x{}",
            self.rows,
            self.cols
        );
        self.data[i * self.row_stride + j * self.col_stride] = value;
    }

    /// The underlying slice.
    pub(crate) fn data_mut(&mut self) -> &mut [f32] {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts `r` is the out-of-bounds error of a view needing `needed` of `len` elements.
    fn assert_out_of_bounds<T: std::fmt::Debug>(r: Result<T>, needed: usize, len: usize) {
        match r {
            Err(KernelError::ViewOutOfBounds {
                needed: n, len: l, ..
            }) if (n, l) == (needed, len) => {}
            other => panic!("expected ViewOutOfBounds needing {needed} of {len}, got {other:?}"),
        }
    }

    /// Asserts `r` is the overlap error of a writable view.
    fn assert_overlapping<T: std::fmt::Debug>(r: Result<T>) {
        match r {
            Err(KernelError::OverlappingOutput {
                op: "MatMut::new", ..
            }) => {}
            other => panic!("expected OverlappingOutput, got {other:?}"),
        }
    }

    #[test]
    fn views_reject_short_slices() {
        let data = [0.0f32; 5];
        assert_out_of_bounds(MatRef::row_major(&data, 2, 3), 6, 5);
        assert!(MatRef::row_major(&data, 1, 5).is_ok());
        assert!(MatRef::new(&data, 2, 2, 3, 1).is_ok()); // reaches offset 4
        assert_out_of_bounds(MatRef::new(&data, 2, 2, 4, 1), 6, 5); // reaches offset 5
        assert!(MatRef::new(&data, 0, 100, 100, 1).is_ok()); // empty
        assert_out_of_bounds(MatRef::new(&data, 2, 2, usize::MAX, 1), usize::MAX, 5); // overflow
        let message = MatRef::row_major(&data, 2, 3).unwrap_err().to_string();
        assert!(
            message.contains("needs 6 elements, but the slice has 5"),
            "{message}"
        );
    }

    #[test]
    fn writable_views_reject_aliasing_strides() {
        let mut data = [0.0f32; 16];
        assert_overlapping(MatMut::new(&mut data, 2, 2, 0, 1));
        assert_overlapping(MatMut::new(&mut data, 2, 3, 2, 1)); // row 1 starts inside row 0
        assert!(MatMut::new(&mut data, 2, 3, 3, 1).is_ok());
        assert!(MatMut::new(&mut data, 3, 2, 1, 3).is_ok()); // column-major
        assert_overlapping(MatMut::new(&mut data, 3, 2, 1, 2));
        assert!(MatMut::new(&mut data, 1, 4, 0, 1).is_ok()); // one row: row stride unused
        assert_overlapping(MatMut::new(&mut data, 4, 1, 0, 0)); // four rows on one element
    }

    #[test]
    fn transpose_swaps_indices() {
        let data: Vec<f32> = (0..6).map(|x| x as f32).collect();
        let a = MatRef::row_major(&data, 2, 3).unwrap();
        let at = a.t();
        assert_eq!((at.rows(), at.cols()), (3, 2));
        for i in 0..2 {
            for j in 0..3 {
                assert_eq!(a.get(i, j), at.get(j, i));
            }
        }
    }
}
