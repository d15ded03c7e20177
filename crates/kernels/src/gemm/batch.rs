//! Views of many equally shaped matrices at a fixed distance apart, for batched GEMM.

use super::view::{MatMut, MatRef, is_injective};
use crate::error::{KernelError, Result};

/// A read-only batch of `batch` matrices, each `rows x cols` with the given strides, item `b`
/// starting at `b * batch_stride`. A `batch_stride` of 0 shares one matrix across the batch
/// (the weights of a convolution, for instance).
#[derive(Debug, Clone, Copy)]
pub struct MatBatchRef<'a> {
    data: &'a [f32],
    batch: usize,
    batch_stride: usize,
    item: MatRef<'a>,
}

impl<'a> MatBatchRef<'a> {
    /// A batch with explicit strides.
    ///
    /// # Errors
    /// [`KernelError::ViewOutOfBounds`] if the last item would reach past the end of `data`.
    pub fn new(
        data: &'a [f32],
        batch: usize,
        batch_stride: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self> {
        let last = last_item_start(batch, batch_stride, data.len(), rows, cols)?;
        let item = MatRef::new(
            &data[last.min(data.len())..],
            rows,
            cols,
            row_stride,
            col_stride,
        )?;
        Ok(Self {
            data,
            batch,
            batch_stride,
            item,
        })
    }

    /// A batch of dense row-major matrices stored back to back.
    ///
    /// # Errors
    /// [`KernelError::ViewOutOfBounds`] if `data` is shorter than `batch * rows * cols`.
    pub fn row_major(data: &'a [f32], batch: usize, rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, batch, rows * cols, rows, cols, cols, 1)
    }

    /// The same matrix repeated `batch` times (batch stride 0).
    pub fn broadcast(matrix: MatRef<'a>, batch: usize) -> Self {
        Self {
            data: matrix.data(),
            batch,
            batch_stride: 0,
            item: matrix,
        }
    }

    /// Number of matrices.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Matrix `index` of the batch.
    ///
    /// # Panics
    /// If `index >= batch`.
    pub fn item(&self, index: usize) -> MatRef<'a> {
        assert!(
            index < self.batch,
            "MatBatchRef::item: {index} outside batch of {}",
            self.batch
        );
        let start = index * self.batch_stride;
        MatRef::new(
            &self.data[start.min(self.data.len())..],
            self.item.rows(),
            self.item.cols(),
            self.item.row_stride(),
            self.item.col_stride(),
        )
        .expect("validated when the batch was built")
    }

    /// Shape of every item, `(rows, cols)`.
    pub fn item_shape(&self) -> (usize, usize) {
        (self.item.rows(), self.item.cols())
    }
}

/// A writable batch of `batch` matrices, item `b` starting at `b * batch_stride`. No two
/// elements of the batch may share memory: items follow one another or sit side by side
/// (batch stride smaller than the row stride, like column blocks of one wide matrix).
#[derive(Debug)]
pub struct MatBatchMut<'a> {
    data: &'a mut [f32],
    batch: usize,
    batch_stride: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatBatchMut<'a> {
    /// A writable batch with explicit strides.
    ///
    /// # Errors
    /// [`KernelError::ViewOutOfBounds`] if the last item would reach past the end of `data`;
    /// [`KernelError::OverlappingOutput`] if an item's elements alias or items overlap.
    pub fn new(
        data: &'a mut [f32],
        batch: usize,
        batch_stride: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self> {
        let last = last_item_start(batch, batch_stride, data.len(), rows, cols)?;
        let len = data.len();
        let item = MatMut::new(
            &mut data[last.min(len)..],
            rows,
            cols,
            row_stride,
            col_stride,
        )?;
        if !is_injective(&[
            (batch_stride, batch),
            (row_stride, rows),
            (col_stride, cols),
        ]) {
            return Err(KernelError::OverlappingOutput {
                op: "MatBatchMut::new",
                rows: item.rows(),
                cols: item.cols(),
                row_stride,
                col_stride,
            });
        }
        Ok(Self {
            data,
            batch,
            batch_stride,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// A batch of dense row-major matrices stored back to back.
    ///
    /// # Errors
    /// [`KernelError::ViewOutOfBounds`] if `data` is shorter than `batch * rows * cols`.
    pub fn row_major(data: &'a mut [f32], batch: usize, rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, batch, rows * cols, rows, cols, cols, 1)
    }

    /// Number of matrices.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Shape of every item, `(rows, cols)`.
    pub fn item_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Writable matrix `index` of the batch.
    ///
    /// # Panics
    /// If `index >= batch`.
    pub fn item_mut(&mut self, index: usize) -> MatMut<'_> {
        assert!(
            index < self.batch,
            "MatBatchMut::item_mut: {index} outside batch of {}",
            self.batch
        );
        let start = index * self.batch_stride;
        let len = self.data.len();
        MatMut::new(
            &mut self.data[start.min(len)..],
            self.rows,
            self.cols,
            self.row_stride,
            self.col_stride,
        )
        .expect("validated when the batch was built")
    }

    /// The whole underlying slice, for splitting into items.
    pub(crate) fn parts(&mut self) -> (&mut [f32], usize, [usize; 4]) {
        (
            self.data,
            self.batch_stride,
            [self.rows, self.cols, self.row_stride, self.col_stride],
        )
    }
}

/// Offset of the last item, checked against the slice length (the item view checks the rest).
fn last_item_start(
    batch: usize,
    batch_stride: usize,
    len: usize,
    rows: usize,
    cols: usize,
) -> Result<usize> {
    let last = batch.saturating_sub(1).checked_mul(batch_stride);
    match last {
        Some(start) if batch == 0 || rows == 0 || cols == 0 || start < len => Ok(start),
        _ => Err(KernelError::ViewOutOfBounds {
            op: "batch view",
            rows,
            cols,
            row_stride: batch_stride,
            col_stride: 0,
            needed: last.unwrap_or(usize::MAX).saturating_add(1),
            len,
        }),
    }
}
