//! The gradient of a convolution's weight: the direct path for one input channel per group,
//! the 16-channel vectorised path, Winograd's (`winograd_weight.rs`), or an implicit GEMM of the output gradient with the
//! lowered input, its reduction over the batch cut into fixed segments summed in order.

use rayon::prelude::*;

use super::lowered_panels::pack_lowered_t;
use super::lowering::{Window, im2col_row};
use super::partition::add_in_order;
use super::{
    Conv2d, ConvPath, Pass, WEIGHT_GRADIENT_SEGMENTS, check_len, dense, direct, winograd_weight,
};
use crate::error::Result;
use crate::gemm::{MatMut, MatRef, PARALLEL_MIN_FLOPS, gemm_on, implicit};

impl Conv2d {
    /// The gradient of the weight: `dw = sum over images and positions of dy * lowered x`,
    /// overwriting `dw`.
    ///
    /// # Errors
    /// [`crate::KernelError::ShapeMismatch`] if a slice's length does not match its shape.
    pub fn backward_weight(&self, x: &[f32], dy: &[f32], dw: &mut [f32]) -> Result<()> {
        let g = &self.geometry;
        check_len("input", x, g.input_shape())?;
        check_len("output gradient", dy, g.output_shape())?;
        check_len("weight gradient", dw, g.weight_shape())?;
        match self.path(Pass::WeightGradient) {
            ConvPath::Direct => {
                direct::weight_gradient(self.isa, g, WEIGHT_GRADIENT_SEGMENTS, x, dy, dw);
                Ok(())
            }
            #[cfg(target_arch = "x86_64")]
            ConvPath::Channels => {
                self.backward_weight_channels(x, dy, dw, WEIGHT_GRADIENT_SEGMENTS);
                Ok(())
            }
            ConvPath::SmallImages => self.backward_weight_small_images(x, dy, dw),
            ConvPath::Dense => dense::weight_gradient(self.isa, g, x, dy, dw),
            ConvPath::Pointwise | ConvPath::Implicit => self.backward_weight_gemm(x, dy, dw),
            ConvPath::Winograd => {
                winograd_weight::weight_gradient(self.isa, g, WEIGHT_GRADIENT_SEGMENTS, x, dy, dw)
            }
            other => unreachable!("{other} does not serve the weight gradient"),
        }
    }

    /// The weight gradient as GEMMs: one per image for a pointwise convolution, else the
    /// implicit GEMM's reduction over images and blocks of positions.
    fn backward_weight_gemm(&self, x: &[f32], dy: &[f32], dw: &mut [f32]) -> Result<()> {
        let g = &self.geometry;
        let (positions, plane) = (g.positions(), g.plane());
        let (out_per_image, in_per_image) = (g.out_channels * positions, g.in_channels * plane);
        let (gi, go, k) = (g.group_in(), g.group_out(), g.col_rows());
        if g.is_pointwise() {
            // dW_g (go x gi) += dy[n, group] (go x P) * x[n, group]^T (P x gi), image by image.
            for group in 0..g.params.groups {
                let dw_g = &mut dw[group * go * k..][..go * k];
                dw_g.fill(0.0);
                for n in 0..g.batch {
                    let dy_n = &dy[n * out_per_image + group * go * positions..];
                    let x_n = &x[n * in_per_image + group * gi * plane..];
                    gemm_on(
                        self.isa,
                        1.0,
                        MatRef::new(dy_n, go, positions, positions, 1)?,
                        MatRef::new(x_n, gi, plane, plane, 1)?.t(),
                        1.0,
                        MatMut::row_major(dw_g, go, k)?,
                    )?;
                }
            }
            return Ok(());
        }
        // dW_g (go x k) = sum over images n and blocks of positions of
        // dy[n, group][:, block] (go x len) * lowered x[n][:, block]^T (len x k), in order.
        let blocks = self.position_blocks();
        let depths: Vec<usize> = (0..g.batch)
            .flat_map(|_| blocks.iter().map(|&(_, len)| len))
            .collect();
        let block_of = |b: usize| (b / blocks.len(), blocks[b % blocks.len()]);
        let nr = implicit::sum_nr(self.isa, go);
        // The reduction over images is cut into a fixed number of segments (never depending
        // on the thread count), each summed into its own partial dW, side by side; partials
        // are added in order. One segment (a single image) splits dW's columns instead.
        let segments = g.batch.min(WEIGHT_GRADIENT_SEGMENTS);
        let per_segment = g.batch.div_ceil(segments.max(1)).max(1);
        let segments = g.batch.div_ceil(per_segment);
        let segment_blocks = per_segment * blocks.len();
        for group in 0..g.params.groups {
            // Sums blocks `first..first + count` of the reduction into `out` (go x k).
            let segment = |first: usize, count: usize, out: &mut [f32], split: bool| {
                implicit::gemm_sum(
                    self.isa,
                    &depths[first..first + count],
                    |b| {
                        let (n, (p0, len)) = block_of(first + b);
                        let start = n * out_per_image + group * go * positions + p0;
                        MatRef::new(&dy[start..], go, len, positions, 1).expect("a block of dy")
                    },
                    |b, jc, nc, scratch, out| {
                        let (n, (p0, len)) = block_of(first + b);
                        let planes = &x[n * in_per_image + group * gi * plane..][..gi * plane];
                        if !(p0.is_multiple_of(g.out_w) && len.is_multiple_of(g.out_w)) {
                            pack_lowered_t(nr, nc, len, out, |j, row| {
                                let (c, ki, kj) = self.tap(jc + j);
                                im2col_row(g, &planes[c * plane..][..plane], ki, kj, p0, row);
                            });
                            return;
                        }
                        let window = Window::new(g, p0 / g.out_w, (p0 + len) / g.out_w);
                        window.fill(g, planes, scratch);
                        pack_lowered_t(nr, nc, len, out, |j, row| {
                            let (c, ki, kj) = self.tap(jc + j);
                            window.lower(g, scratch, c, ki, kj, p0, row);
                        });
                    },
                    MatMut::row_major(out, go, k).expect("go x k"),
                    split,
                );
            };
            let dw_g = &mut dw[group * go * k..][..go * k];
            if segments <= 1 {
                segment(0, depths.len(), dw_g, true);
                continue;
            }
            let flops = 2 * go * k * positions * g.batch;
            let run = |s: usize| {
                let mut partial = vec![0.0; go * k];
                let first = s * segment_blocks;
                segment(
                    first,
                    segment_blocks.min(depths.len() - first),
                    &mut partial,
                    false,
                );
                partial
            };
            let partials: Vec<Vec<f32>> = if flops >= PARALLEL_MIN_FLOPS {
                (0..segments).into_par_iter().map(run).collect()
            } else {
                (0..segments).map(run).collect()
            };
            dw_g.copy_from_slice(&partials[0]);
            add_in_order(dw_g, partials[1..].iter().map(Vec::as_slice));
        }
        Ok(())
    }
}
