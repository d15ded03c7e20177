//! He et al. 2016's parameter-free "option A" residual shortcut (the CIFAR ResNets'): keep every
//! `stride`-th row and column, and pad the channels with zeros up to the block's width.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl Tensor {
    /// He et al. 2016 §4.2's option-A shortcut: `x[:, :, ::stride, ::stride]` with
    /// `out_channels - C` zero channels added, half before and half after (the extra one
    /// after), as `F.pad(s, (0, 0, 0, 0, pad // 2, pad - pad // 2))` in PyTorch. The backward
    /// hands each kept element its output's gradient; dropped and padded ones get none.
    ///
    /// # Shapes
    /// - input `[N, C, H, W]`
    /// - output `[N, out_channels, ⌈H / stride⌉, ⌈W / stride⌉]`
    ///
    /// ```
    /// use ventral_autograd::Tensor;
    ///
    /// // One 2x2 channel, stride 2, padded to 3 channels: keeps x[0, 0, 0, 0] = 1 with one
    /// // zero channel before ((3 - 1) / 2 = 1) and one after.
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2])?;
    /// let y = x.shortcut_option_a(3, 2)?;
    /// assert_eq!(y.dims(), [1, 3, 1, 1]);
    /// assert_eq!(y.to_vec(), [0.0, 1.0, 0.0]);
    /// # Ok::<(), ventral_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the input is not rank 4, `stride` is zero or
    /// `out_channels < C`.
    pub fn shortcut_option_a(&self, out_channels: usize, stride: usize) -> Result<Tensor> {
        const OP: &str = "shortcut_option_a";
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                OP,
                format!("needs [N, C, H, W], got {:?}", self.dims()),
            ));
        };
        if stride == 0 || out_channels < c {
            return Err(Error::invalid(
                OP,
                format!(
                    "stride {stride} and {out_channels} output channels for {c} input channels"
                ),
            ));
        }
        let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
        let before = (out_channels - c) / 2;
        // Each (sample, channel) plane maps to one output plane: every `stride`-th row and
        // column of the input plane, in order. Plane `p` of the input is plane
        // `b * out_channels + before + ch` of the output.
        let out_plane = move |p: usize| (p / c) * out_channels + before + p % c;
        let mut out = ventral_kernels::elementwise::zeros(n * out_channels * oh * ow);
        {
            let data = self.data();
            for (p, plane) in data.chunks_exact(h * w).enumerate() {
                let dst = &mut out[out_plane(p) * oh * ow..][..oh * ow];
                for (row, dst_row) in plane
                    .chunks(w)
                    .step_by(stride)
                    .zip(dst.chunks_exact_mut(ow))
                {
                    for (d, &v) in dst_row.iter_mut().zip(row.iter().step_by(stride)) {
                        *d = v;
                    }
                }
            }
        }
        let numel = self.numel();
        Tensor::from_op(
            OP,
            out,
            vec![n, out_channels, oh, ow],
            &[self],
            move |ctx| {
                let g = ctx.grad();
                let mut dx = ventral_kernels::elementwise::zeros(numel);
                for (p, plane) in dx.chunks_exact_mut(h * w).enumerate() {
                    let src = &g[out_plane(p) * oh * ow..][..oh * ow];
                    for (row, src_row) in plane
                        .chunks_mut(w)
                        .step_by(stride)
                        .zip(src.chunks_exact(ow))
                    {
                        for (d, &v) in row.iter_mut().step_by(stride).zip(src_row) {
                            *d = v;
                        }
                    }
                }
                Ok(vec![Some(dx)])
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;

    #[test]
    fn subsamples_pads_channels_and_routes_the_gradient() {
        // One sample, one channel of 2x2 values 1..4, stride 2, padded to 3 channels:
        // keeps x[0, 0, 0, 0] = 1, one zero channel before (3 - 1) / 2 = 1 and one after.
        let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2])
            .unwrap()
            .with_grad();
        let y = x.shortcut_option_a(3, 2).unwrap();
        assert_eq!(y.dims(), [1, 3, 1, 1]);
        assert_eq!(y.to_vec(), [0.0, 1.0, 0.0]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec(), [1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn rejects_bad_arguments() {
        let x = Tensor::zeros([1, 4, 2, 2]).unwrap();
        let e = x.shortcut_option_a(2, 1).unwrap_err().to_string();
        assert!(
            e.contains("stride 1 and 2 output channels for 4 input channels"),
            "{e}"
        );
        let e = Tensor::zeros([4, 2, 2])
            .unwrap()
            .shortcut_option_a(4, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs [N, C, H, W], got [4, 2, 2]"), "{e}");
    }
}
