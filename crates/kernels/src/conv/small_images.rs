//! Convolutions over images with fewer output positions than a micro-panel is wide (VGG's last
//! 2x2 layers, the 1x1 and 3x3 maps at the end of deep networks).
//!
//! The implicit GEMM works one image at a time, so an image of 4 positions fills 4 of a
//! 16-wide register tile and its weight-gradient blocks are 4 positions deep. Here whole
//! images are lowered side by side (im2col, several images per tile within
//! [`SMALL_IMAGES_COL_BUDGET`]) and multiplied with one GEMM per tile, as a batch-folded
//! product. On VGG-11 (CIFAR)'s
//! 512 -> 512 layer on 2x2 maps (batch 64), 1 thread, medians against the implicit GEMM: forward
//! 55 -> 25 ms, input gradient 58 -> 25 ms, weight gradient 96 -> 29 ms. (On 4x4 maps the
//! implicit GEMM wins the forward and input gradient, so the bound is strict.)

use rayon::prelude::*;

use super::lowering::im2col_row;
use super::partition::add_in_order;
use super::{Conv2d, PARALLEL_LOWERING_MIN, Scratch, Tile, WEIGHT_GRADIENT_SEGMENTS};
use crate::error::Result;
use crate::gemm::{MatMut, MatRef, gemm_on};

/// Lowered floats of one forward or weight-gradient tile (16 MiB): each tile is one GEMM, and
/// the GEMM packs the lowered matrix itself, so the tile need not stay in L2. With the input
/// gradient's 1 MiB tiles, VGG-11 (CIFAR)'s 512 -> 512 layer on 2x2 maps (batch 64) ran five
/// products 56 wide, each packing all 9.4 MB of weights again (forward 7.9-8.0 ms at 2
/// threads, 15.7-16.2 at 1; one tile: 6.2-6.3 and 11.7-12.5), and its weight gradient five
/// products 56 deep, each streaming a 9.4 MB partial, then summed them, at 63 GFLOP/s (19.1
/// ms at 2 threads; one tile: 9.3-9.6 ms) on a Xeon.
const SMALL_IMAGES_COL_BUDGET: usize = 1 << 22;

impl Conv2d {
    /// [`Conv2d::forward`] over whole-image tiles: per tile and group, lower, one GEMM, then
    /// each image's rows plus bias to their place. Tiles write disjoint images of `y`, so
    /// they run side by side; an element's bits do not depend on the thread that made it.
    pub(super) fn forward_small_images(
        &self,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) -> Result<()> {
        let g = &self.geometry;
        let (go, k) = (g.group_out(), g.col_rows());
        let tiles = self.tiles_within(SMALL_IMAGES_COL_BUDGET);
        let per_tile = tiles.first().map_or(1, |t| t.images) * g.out_channels * g.positions();
        y.par_chunks_mut(per_tile.max(1))
            .zip(tiles.par_iter())
            .try_for_each(|(images, &tile)| -> Result<()> {
                let mut scratch = Scratch::take();
                let result = (0..g.params.groups).try_for_each(|group| {
                    let width = tile.width();
                    self.lower(x, group, tile, &mut scratch.col);
                    scratch.rows.resize(go * width, 0.0);
                    gemm_on(
                        self.isa,
                        1.0,
                        MatRef::row_major(&w[group * go * k..][..go * k], go, k)?,
                        MatRef::row_major(&scratch.col, k, width)?,
                        0.0,
                        MatMut::row_major(&mut scratch.rows, go, width)?,
                    )?;
                    self.scatter_rows(&scratch.rows, group, tile, bias, images);
                    Ok(())
                });
                scratch.give_back();
                result
            })
    }

    /// [`Conv2d::backward_weight`] over whole-image tiles: the batch is cut into a fixed
    /// number of segments (never depending on the thread count), each accumulating
    /// `dy tile (go x width) * lowered^T (width x k)` over its tiles into its own partial, side
    /// by side; the partials are then summed in order.
    pub(super) fn backward_weight_small_images(
        &self,
        x: &[f32],
        dy: &[f32],
        dw: &mut [f32],
    ) -> Result<()> {
        let g = &self.geometry;
        let (go, k) = (g.group_out(), g.col_rows());
        let tiles = self.tiles_within(SMALL_IMAGES_COL_BUDGET);
        let segments = tiles.len().clamp(1, WEIGHT_GRADIENT_SEGMENTS);
        let per_segment = tiles.len().div_ceil(segments);
        for group in 0..g.params.groups {
            let partials = tiles
                .par_chunks(per_segment.max(1))
                .map(|segment| -> Result<Vec<f32>> {
                    let mut scratch = Scratch::take();
                    let mut partial = vec![0.0; go * k];
                    let result = segment.iter().enumerate().try_for_each(|(t, &tile)| {
                        let width = tile.width();
                        self.lower(x, group, tile, &mut scratch.col);
                        self.gather_rows(dy, group, tile, &mut scratch.rows);
                        gemm_on(
                            self.isa,
                            1.0,
                            MatRef::row_major(&scratch.rows, go, width)?,
                            MatRef::row_major(&scratch.col, k, width)?.t(),
                            if t == 0 { 0.0 } else { 1.0 },
                            MatMut::row_major(&mut partial, go, k)?,
                        )
                    });
                    scratch.give_back();
                    result.map(|()| partial)
                })
                .collect::<Result<Vec<_>>>()?;
            let dw_g = &mut dw[group * go * k..][..go * k];
            dw_g.fill(0.0);
            add_in_order(dw_g, partials.iter().map(Vec::as_slice));
        }
        Ok(())
    }

    /// im2col of one group over one tile into `col` (`k x width`, images side by side).
    fn lower(&self, x: &[f32], group: usize, tile: Tile, col: &mut Vec<f32>) {
        let g = &self.geometry;
        let (gi, plane, taps) = (g.group_in(), g.plane(), g.kernel_h * g.kernel_w);
        let width = tile.width();
        col.resize(g.col_rows() * width, 0.0);
        let job = |(r, row): (usize, &mut [f32])| {
            let (c, ki, kj) = (r / taps, (r % taps) / g.kernel_w, r % g.kernel_w);
            let channel = group * gi + c;
            for (i, segment) in row.chunks_mut(tile.cols).enumerate() {
                let image = tile.image + i;
                let x_plane = &x[(image * g.in_channels + channel) * plane..][..plane];
                im2col_row(g, x_plane, ki, kj, tile.p0, segment);
            }
        };
        if col.len() >= PARALLEL_LOWERING_MIN {
            col.par_chunks_mut(width).enumerate().for_each(job);
        } else {
            col.chunks_mut(width).enumerate().for_each(job);
        }
    }

    /// Writes a tile's output rows (`go x width`, images side by side) for one group, plus
    /// bias, into `images` (the tile's images of `y`).
    fn scatter_rows(
        &self,
        rows: &[f32],
        group: usize,
        tile: Tile,
        bias: Option<&[f32]>,
        images: &mut [f32],
    ) {
        let g = &self.geometry;
        let (positions, go, width) = (g.positions(), g.group_out(), tile.width());
        for (index, plane) in images.chunks_mut(positions).enumerate() {
            let (i, channel) = (index / g.out_channels, index % g.out_channels);
            if channel / go != group {
                continue;
            }
            let src = &rows[(channel - group * go) * width + i * positions..][..positions];
            let b = bias.map_or(0.0, |b| b[channel]);
            for (d, s) in plane.iter_mut().zip(src) {
                *d = s + b;
            }
        }
    }
}
