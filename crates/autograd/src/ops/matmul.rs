//! Matrix products, 2-D and batched, on the packed GEMM.
//!
//! Operands are read through strided views, so a transposed or permuted operand is never
//! copied, and the backward passes `dA = dY · Bᵀ`, `dB = Aᵀ · dY` use transposed *views*
//! (swapped strides) of the saved operands, never transposed copies.

use std::sync::Arc;

use ventral_kernels::gemm::{MatBatchMut, MatBatchRef, MatMut, gemm, gemm_batched};

use super::broadcast_shapes;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// How one operand is read: `batch` matrices (1 = shared by every product) `batch_stride`
/// apart, each with row and column strides.
#[derive(Debug, Clone, Copy)]
struct Layout {
    shared: bool,
    batch_stride: usize,
    row_stride: usize,
    col_stride: usize,
}

/// The layout of `t` (rank >= 2) if its batch dimensions collapse to one stride.
fn layout(t: &Tensor) -> Option<Layout> {
    let r = t.rank();
    let (dims, strides) = (t.dims(), t.strides());
    let batch: usize = dims[..r - 2].iter().product();
    let mut batch_stride = 0;
    if batch > 1 {
        // The batch dimensions of size > 1 must nest: each stride = next stride * next size.
        let live: Vec<usize> = (0..r - 2).filter(|&i| dims[i] > 1).collect();
        for w in live.windows(2) {
            if strides[w[0]] != strides[w[1]] * dims[w[1]] {
                return None;
            }
        }
        batch_stride = strides[*live.last()?];
    }
    Some(Layout {
        shared: batch <= 1,
        batch_stride,
        row_stride: strides[r - 2],
        col_stride: strides[r - 1],
    })
}

/// A batch view of `t` with layout `l`, `batch` items of `rows x cols`, optionally transposed.
fn view<'a>(
    data: &'a [f32],
    l: Layout,
    batch: usize,
    (rows, cols): (usize, usize),
    transposed: bool,
) -> Result<MatBatchRef<'a>> {
    let (rows, cols, rs, cs) = if transposed {
        (cols, rows, l.col_stride, l.row_stride)
    } else {
        (rows, cols, l.row_stride, l.col_stride)
    };
    Ok(MatBatchRef::new(
        data,
        batch,
        if l.shared { 0 } else { l.batch_stride },
        rows,
        cols,
        rs,
        cs,
    )?)
}

impl Tensor {
    /// Matrix product over the last two dimensions: `[.., m, k] x [.., k, n] -> [.., m, n]`.
    /// Leading (batch) dimensions broadcast; an operand without them (or with all ones) is
    /// shared by every product without copying.
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?.with_grad();
    /// let b = Tensor::from_vec(vec![5.0, 6.0, 7.0, 8.0], [2, 2])?;
    /// let c = a.matmul(&b)?;
    /// assert_eq!(c.to_vec(), [19.0, 22.0, 43.0, 50.0]);
    /// // d(sum C)/dA = 1 · Bᵀ: row i of dA is the row sums of B, [11, 15].
    /// let g = c.sum_all()?.backward()?;
    /// assert_eq!(g.get(&a).unwrap().to_vec(), [11.0, 15.0, 11.0, 15.0]);
    ///
    /// let err = a.matmul(&Tensor::zeros([4, 5])?).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "matmul: lhs [2, 2] and rhs [4, 5] do not agree on the inner dimension"
    /// );
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] naming both shapes if a rank is below 2, the inner
    /// dimensions differ, or the batch dimensions cannot broadcast.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        const OP: &str = "matmul";
        let (a, b) = (self, other);
        let (ra, rb) = (a.rank(), b.rank());
        if ra < 2 || rb < 2 {
            return Err(Error::mismatch(
                OP,
                a.shape(),
                b.shape(),
                "must both have rank >= 2",
            ));
        }
        let (m, k) = (a.dims()[ra - 2], a.dims()[ra - 1]);
        let (k2, n) = (b.dims()[rb - 2], b.dims()[rb - 1]);
        if k != k2 {
            return Err(Error::mismatch(
                OP,
                a.shape(),
                b.shape(),
                "do not agree on the inner dimension",
            ));
        }
        let (ba, bb) = (
            Shape::from(&a.dims()[..ra - 2]),
            Shape::from(&b.dims()[..rb - 2]),
        );
        let batch_shape = broadcast_shapes(OP, &ba, &bb).map_err(|_| {
            Error::mismatch(
                OP,
                a.shape(),
                b.shape(),
                "have batch dimensions that cannot be broadcast",
            )
        })?;
        let batch = batch_shape.numel();
        // An operand that is neither shared nor full-batch is expanded (a differentiable
        // broadcast); one whose batch strides do not collapse is made contiguous.
        let prepare =
            |t: &Tensor, own: &Shape, rows: usize, cols: usize| -> Result<(Tensor, Layout)> {
                let mut t = t.clone();
                if own.numel() > 1 && own.numel() != batch {
                    let mut full = batch_shape.dims().to_vec();
                    full.extend([rows, cols]);
                    t = t.broadcast_to(full)?.contiguous()?;
                }
                match layout(&t) {
                    Some(l) => Ok((t, l)),
                    None => {
                        let c = t.contiguous()?;
                        let l = layout(&c).ok_or_else(|| {
                            Error::invalid(
                                OP,
                                format!("cannot lay out {} as a batch of matrices", c.shape()),
                            )
                        })?;
                        Ok((c, l))
                    }
                }
            };
        let (a, la) = prepare(a, &ba, m, k)?;
        let (b, lb) = prepare(b, &bb, k, n)?;
        let mut out = vec![0.0; batch * m * n];
        {
            let (da, oa) = a.storage();
            let (db, ob) = b.storage();
            let av = view(&da[oa..], la, batch, (m, k), false)?;
            let bv = view(&db[ob..], lb, batch, (k, n), false)?;
            gemm_batched(
                1.0,
                av,
                bv,
                0.0,
                MatBatchMut::row_major(&mut out, batch, m, n)?,
            )?;
        }
        let mut dims = batch_shape.dims().to_vec();
        dims.extend([m, n]);
        let (sa, sb) = (a.clone(), b.clone());
        Tensor::record(
            OP,
            Arc::new(out),
            Shape::from(dims),
            &[&a, &b],
            move |ctx| {
                let g = ctx.grad();
                let dy = MatBatchRef::row_major(g, batch, m, n)?;
                let (da, oa) = sa.storage();
                let (db, ob) = sb.storage();
                // dA = dY · Bᵀ (m x n times n x k), through a transposed view of B.
                let ga = ctx
                    .needs(0)
                    .then(|| {
                        let bt = view(&db[ob..], lb, batch, (k, n), true)?;
                        product_into(dy, bt, la.shared, batch, (m, k))
                    })
                    .transpose()?;
                // dB = Aᵀ · dY (k x m times m x n), through a transposed view of A.
                let gb = ctx
                    .needs(1)
                    .then(|| {
                        let at = view(&da[oa..], la, batch, (m, k), true)?;
                        product_into(at, dy, lb.shared, batch, (k, n))
                    })
                    .transpose()?;
                Ok(vec![ga, gb])
            },
        )
    }
}

/// `Σ_i lhs[i] · rhs[i]` into one `rows x cols` matrix if the target is shared across the
/// batch (summing products in batch order), else each product into its own matrix.
fn product_into(
    lhs: MatBatchRef<'_>,
    rhs: MatBatchRef<'_>,
    shared: bool,
    batch: usize,
    (rows, cols): (usize, usize),
) -> Result<Vec<f32>> {
    if shared {
        let mut out = vec![0.0; rows * cols];
        for i in 0..batch {
            let beta = if i == 0 { 0.0 } else { 1.0 };
            gemm(
                1.0,
                lhs.item(i),
                rhs.item(i),
                beta,
                MatMut::row_major(&mut out, rows, cols)?,
            )?;
        }
        Ok(out)
    } else {
        let mut out = vec![0.0; batch * rows * cols];
        gemm_batched(
            1.0,
            lhs,
            rhs,
            0.0,
            MatBatchMut::row_major(&mut out, batch, rows, cols)?,
        )?;
        Ok(out)
    }
}
