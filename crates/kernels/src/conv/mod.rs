//! 2-D convolution over NCHW f32 tensors: forward, gradient of the input, of the weight and of
//! the bias, for any kernel size, stride, zero padding, dilation and groups.
//!
//! A 1x1, stride-1 convolution is a plain matrix product per image. Everything else is lowered
//! with im2col a tile of output positions at a time (the column buffer is bounded by
//! [`COL_BUDGET`] floats, never by the batch) and multiplied with the packed GEMM. Tiles hold
//! whole images when an image is small (so both cores get independent images) and a range of
//! one image's positions when it is large (so the GEMM itself splits across cores).
//!
//! Every output element is one dot product summed in a fixed order, and the weight gradient
//! sums tiles in a fixed order, so results are bit-identical at any thread count.
//!
//! ```
//! use ventral_kernels::conv::{Conv2d, Conv2dParams};
//!
//! // A 32x32x3 image convolved with six 5x5x3 filters gives six 28x28 activation maps.
//! let conv = Conv2d::new([1, 3, 32, 32], [6, 3, 5, 5], Conv2dParams::default())?;
//! assert_eq!(conv.geometry().output_shape(), [1, 6, 28, 28]);
//! let x = vec![1.0; 3 * 32 * 32];
//! let w = vec![0.5; 6 * 3 * 5 * 5];
//! let mut y = vec![0.0; 6 * 28 * 28];
//! conv.forward(&x, &w, Some(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), &mut y)?;
//! assert_eq!(y[0], 0.5 * 75.0); // 75 taps of 1 * 0.5, bias 0
//! assert_eq!(y[28 * 28], 0.5 * 75.0 + 1.0); // second map, bias 1
//! # Ok::<(), ventral_kernels::KernelError>(())
//! ```

mod geometry;
mod lowering;

use rayon::prelude::*;

pub use geometry::{Conv2dGeometry, Conv2dParams};

use crate::error::{KernelError, Result};
use crate::gemm::{MatBatchMut, MatBatchRef, MatMut, MatRef, gemm_batched_on, gemm_on};
use crate::isa::Isa;
use lowering::{col2im_channel, im2col_channel};

/// Floats of lowered input (im2col) one convolution call holds at a time: 1 MiB, so a tile's
/// columns are still in L2 when the GEMM packs them.
pub const COL_BUDGET: usize = 1 << 18;

/// Below this many lowered floats per tile, im2col stays on one thread.
const PARALLEL_LOWERING_MIN: usize = 1 << 15;

/// A convolution of fixed geometry, ready to run forward and backward.
#[derive(Debug, Clone, Copy)]
pub struct Conv2d {
    geometry: Conv2dGeometry,
    isa: Isa,
}

/// A tile of output positions: `images` whole consecutive images starting at `image`, or
/// positions `p0..p0 + cols` of the single image `image`.
#[derive(Debug, Clone, Copy)]
struct Tile {
    image: usize,
    images: usize,
    p0: usize,
    cols: usize,
}

impl Tile {
    /// Columns of the tile's lowered matrix: `images * cols`.
    fn width(&self) -> usize {
        self.images * self.cols
    }
}

impl Conv2d {
    /// A convolution of input shape `[N, C, H, W]` with weight shape `[O, C / groups, KH, KW]`.
    ///
    /// # Errors
    /// As [`Conv2dGeometry::new`].
    pub fn new(input: [usize; 4], weight: [usize; 4], params: Conv2dParams) -> Result<Self> {
        Ok(Self {
            geometry: Conv2dGeometry::new(input, weight, params)?,
            isa: Isa::detect(),
        })
    }

    /// The same convolution on an explicit instruction set (for tests and benchmarks).
    ///
    /// # Errors
    /// [`KernelError::UnsupportedIsa`] if this CPU cannot run `isa`.
    pub fn with_isa(self, isa: Isa) -> Result<Self> {
        Ok(Self {
            isa: isa.check()?,
            ..self
        })
    }

    /// The validated sizes.
    pub fn geometry(&self) -> &Conv2dGeometry {
        &self.geometry
    }

    /// `y = conv(x, w) + bias`, with `y` of the output shape.
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if a slice's length does not match its shape.
    pub fn forward(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) -> Result<()> {
        let g = &self.geometry;
        check_len("input", x, g.input_shape())?;
        check_len("weight", w, g.weight_shape())?;
        check_len("output", y, g.output_shape())?;
        if let Some(b) = bias {
            check_len("bias", b, [g.out_channels, 1, 1, 1])?;
        }
        let tiles = self.tiles();
        let (positions, out_per_image) = (g.positions(), g.out_channels * g.positions());
        let whole_images =
            !g.is_pointwise() && tiles.iter().all(|t| t.images > 1 || t.cols == positions);
        if !whole_images {
            // Products accumulate onto the bias (or zero) in place.
            match bias {
                Some(b) => y
                    .par_chunks_mut(positions.max(1))
                    .enumerate()
                    .for_each(|(i, plane)| {
                        plane.fill(b[i % g.out_channels]);
                    }),
                None => y.fill(0.0),
            }
        }
        let (go, k) = (g.group_out(), g.col_rows());
        let mut scratch = Scratch::take();
        for group in 0..g.params.groups {
            let w_g = MatRef::row_major(&w[group * go * k..][..go * k], go, k)?;
            if g.is_pointwise() {
                // y[n, group] (go x P) += W_g (go x gi) * x[n, group] (gi x P), for all n at once.
                gemm_batched_on(
                    self.isa,
                    1.0,
                    MatBatchRef::broadcast(w_g, g.batch),
                    self.input_planes(group).view(x)?,
                    1.0,
                    self.output_planes(group).view_mut(y)?,
                )?;
                continue;
            }
            if whole_images {
                // Tiles of whole images are independent and write disjoint images of y: run
                // them side by side. Each is one GEMM over its images, then each image's rows
                // (plus bias) to their place; the result does not depend on which thread ran it.
                let per_tile = tiles.first().map_or(1, |t| t.images) * out_per_image;
                y.par_chunks_mut(per_tile)
                    .zip(tiles.par_iter())
                    .try_for_each(|(images, &tile)| -> Result<()> {
                        let mut scratch = Scratch::take();
                        let width = tile.width();
                        self.lower(x, group, tile, &mut scratch.col);
                        scratch.rows.resize(go * width, 0.0);
                        gemm_on(
                            self.isa,
                            1.0,
                            w_g,
                            MatRef::row_major(&scratch.col, k, width)?,
                            0.0,
                            MatMut::row_major(&mut scratch.rows, go, width)?,
                        )?;
                        self.scatter_rows(&scratch.rows, group, tile, bias, images);
                        scratch.give_back();
                        Ok(())
                    })?;
                continue;
            }
            for &tile in &tiles {
                let width = tile.width();
                self.lower(x, group, tile, &mut scratch.col);
                let col = MatRef::row_major(&scratch.col, k, width)?;
                {
                    let mut out = self.output_items(tile, group).view_mut(y)?;
                    gemm_on(self.isa, 1.0, w_g, col, 1.0, out.item_mut(0))?;
                }
            }
        }
        scratch.give_back();
        Ok(())
    }

    /// The gradient of the input: `dx = conv_transpose(dy, w)`, overwriting `dx`.
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if a slice's length does not match its shape.
    pub fn backward_input(&self, dy: &[f32], w: &[f32], dx: &mut [f32]) -> Result<()> {
        let g = &self.geometry;
        check_len("output gradient", dy, g.output_shape())?;
        check_len("weight", w, g.weight_shape())?;
        check_len("input gradient", dx, g.input_shape())?;
        let (positions, in_per_image) = (g.positions(), g.in_channels * g.plane());
        let (go, k) = (g.group_out(), g.col_rows());
        if !g.is_pointwise() {
            dx.fill(0.0);
        }
        let mut scratch = Scratch::take();
        for group in 0..g.params.groups {
            // W_g^T: k x go, a free transpose of the row-major go x k block.
            let w_t = MatRef::row_major(&w[group * go * k..][..go * k], go, k)?.t();
            if g.is_pointwise() {
                gemm_batched_on(
                    self.isa,
                    1.0,
                    MatBatchRef::broadcast(w_t, g.batch),
                    self.output_planes(group).view(dy)?,
                    0.0,
                    self.input_planes(group).view_mut(dx)?,
                )?;
                continue;
            }
            // Per tile: dcol (k x width) = W_g^T (k x go) * dy tile (go x width), then col2im
            // into the tile's images.
            let run_tile = |tile: Tile, images: &mut [f32], scratch: &mut Scratch| -> Result<()> {
                let width = tile.width();
                self.gather_rows(dy, group, tile, &mut scratch.rows);
                scratch.col.resize(k * width, 0.0);
                gemm_on(
                    self.isa,
                    1.0,
                    w_t,
                    MatRef::row_major(&scratch.rows, go, width)?,
                    0.0,
                    MatMut::row_major(&mut scratch.col, k, width)?,
                )?;
                self.unlower(&scratch.col, group, tile, images);
                Ok(())
            };
            let tiles = self.tiles();
            if tiles.iter().all(|t| t.p0 == 0 && t.cols == positions) {
                // Whole-image tiles write disjoint images of dx: run them side by side.
                dx.par_chunks_mut(tiles.first().map_or(1, |t| t.images) * in_per_image)
                    .zip(tiles.par_iter())
                    .try_for_each(|(images, &tile)| {
                        let mut scratch = Scratch::take();
                        let result = run_tile(tile, images, &mut scratch);
                        scratch.give_back();
                        result
                    })?;
            } else {
                // Ranges of one image overlap in dx through the kernel's reach: in order.
                for tile in tiles {
                    let images = &mut dx[tile.image * in_per_image..][..in_per_image];
                    run_tile(tile, images, &mut scratch)?;
                }
            }
        }
        scratch.give_back();
        Ok(())
    }

    /// The gradient of the weight: `dw = sum over images and positions of dy * lowered x`,
    /// overwriting `dw`.
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if a slice's length does not match its shape.
    pub fn backward_weight(&self, x: &[f32], dy: &[f32], dw: &mut [f32]) -> Result<()> {
        let g = &self.geometry;
        check_len("input", x, g.input_shape())?;
        check_len("output gradient", dy, g.output_shape())?;
        check_len("weight gradient", dw, g.weight_shape())?;
        let (positions, plane) = (g.positions(), g.plane());
        let (out_per_image, in_per_image) = (g.out_channels * positions, g.in_channels * plane);
        let (gi, go, k) = (g.group_in(), g.group_out(), g.col_rows());
        dw.fill(0.0);
        for group in 0..g.params.groups {
            let dw_g = &mut dw[group * go * k..][..go * k];
            if g.is_pointwise() {
                // dW_g (go x gi) += dy[n, group] (go x P) * x[n, group]^T (P x gi), image by image.
                for n in 0..g.batch {
                    let dy_n = MatRef::new(
                        &dy[n * out_per_image + group * go * positions..],
                        go,
                        positions,
                        positions,
                        1,
                    )?;
                    let x_n = MatRef::new(
                        &x[n * in_per_image + group * gi * plane..],
                        gi,
                        plane,
                        plane,
                        1,
                    )?;
                    gemm_on(
                        self.isa,
                        1.0,
                        dy_n,
                        x_n.t(),
                        1.0,
                        MatMut::row_major(dw_g, go, k)?,
                    )?;
                }
                continue;
            }
            // dW_g (go x k) += dy tile (go x width) * col^T (width x k), per tile.
            let tile_product = |tile: Tile, out: &mut [f32], beta: f32, scratch: &mut Scratch| {
                let width = tile.width();
                self.lower(x, group, tile, &mut scratch.col);
                self.gather_rows(dy, group, tile, &mut scratch.rows);
                gemm_on(
                    self.isa,
                    1.0,
                    MatRef::row_major(&scratch.rows, go, width)?,
                    MatRef::row_major(&scratch.col, k, width)?.t(),
                    beta,
                    MatMut::row_major(out, go, k)?,
                )
            };
            let tiles = self.tiles();
            if tiles.len() > 1 && tiles.iter().all(|t| t.p0 == 0 && t.cols == positions) {
                // Whole-image tiles: each tile's product into its own buffer, side by side,
                // then summed in tile order, so the bits do not depend on the thread count.
                let partials = tiles
                    .par_iter()
                    .map(|&tile| -> Result<Vec<f32>> {
                        let mut scratch = Scratch::take();
                        let mut partial = vec![0.0; go * k];
                        tile_product(tile, &mut partial, 0.0, &mut scratch)?;
                        scratch.give_back();
                        Ok(partial)
                    })
                    .collect::<Result<Vec<_>>>()?;
                for partial in partials {
                    for (d, v) in dw_g.iter_mut().zip(&partial) {
                        *d += v;
                    }
                }
            } else {
                let mut scratch = Scratch::take();
                for tile in tiles {
                    tile_product(tile, dw_g, 1.0, &mut scratch)?;
                }
                scratch.give_back();
            }
        }
        Ok(())
    }

    /// The gradient of the bias: `db[o] = sum over images and positions of dy[n, o, p]`.
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if a slice's length does not match its shape.
    pub fn backward_bias(&self, dy: &[f32], db: &mut [f32]) -> Result<()> {
        let g = &self.geometry;
        check_len("output gradient", dy, g.output_shape())?;
        check_len("bias gradient", db, [g.out_channels, 1, 1, 1])?;
        let positions = g.positions();
        db.par_iter_mut().enumerate().for_each(|(o, out)| {
            // f64 over images in order: exact enough and independent of the thread count.
            let total: f64 = (0..g.batch)
                .map(|n| {
                    let plane = &dy[(n * g.out_channels + o) * positions..][..positions];
                    plane.iter().map(|&v| v as f64).sum::<f64>()
                })
                .sum();
            *out = total as f32;
        });
        Ok(())
    }

    /// The tiles of output positions, in order: whole images when `COL_BUDGET` holds at least
    /// one image's lowered columns, else column ranges of one image.
    fn tiles(&self) -> Vec<Tile> {
        let g = &self.geometry;
        let positions = g.positions();
        let budget_cols = (COL_BUDGET / g.col_rows().max(1)).max(1);
        let mut tiles = Vec::new();
        if positions <= budget_cols {
            let per_tile = (budget_cols / positions.max(1)).max(1);
            let mut image = 0;
            while image < g.batch {
                let images = per_tile.min(g.batch - image);
                tiles.push(Tile {
                    image,
                    images,
                    p0: 0,
                    cols: positions,
                });
                image += images;
            }
        } else {
            // Equal-sized ranges, so no tile is a sliver.
            let pieces = positions.div_ceil(budget_cols);
            let cols = positions.div_ceil(pieces);
            for image in 0..g.batch {
                for p0 in (0..positions).step_by(cols) {
                    tiles.push(Tile {
                        image,
                        images: 1,
                        p0,
                        cols: cols.min(positions - p0),
                    });
                }
            }
        }
        tiles
    }

    /// Every image's input planes of one group, each a `gi x (H·W)` matrix (pointwise case).
    fn input_planes(&self, group: usize) -> Items {
        let g = &self.geometry;
        let (gi, plane) = (g.group_in(), g.plane());
        Items {
            offset: group * gi * plane,
            count: g.batch,
            stride: g.in_channels * plane,
            rows: gi,
            cols: plane,
            row_stride: plane,
        }
    }

    /// Every image's output planes of one group, each a `go x (OH·OW)` matrix.
    fn output_planes(&self, group: usize) -> Items {
        let g = &self.geometry;
        let (go, positions) = (g.group_out(), g.positions());
        Items {
            offset: group * go * positions,
            count: g.batch,
            stride: g.out_channels * positions,
            rows: go,
            cols: positions,
            row_stride: positions,
        }
    }

    /// The tile's block of the output (or its gradient) for one group: per image, `go` rows
    /// of the tile's positions.
    fn output_items(&self, tile: Tile, group: usize) -> Items {
        let g = &self.geometry;
        let positions = g.positions();
        Items {
            offset: tile.image * g.out_channels * positions
                + group * g.group_out() * positions
                + tile.p0,
            count: tile.images,
            stride: g.out_channels * positions,
            rows: g.group_out(),
            cols: tile.cols,
            row_stride: positions,
        }
    }

    /// Copies the tile's rows of `dy` for one group side by side into `rows` (`go x width`,
    /// laid out like the lowered columns).
    fn gather_rows(&self, dy: &[f32], group: usize, tile: Tile, rows: &mut Vec<f32>) {
        let g = &self.geometry;
        let (positions, go, width) = (g.positions(), g.group_out(), tile.width());
        rows.resize(go * width, 0.0);
        for i in 0..tile.images {
            let src =
                (tile.image + i) * g.out_channels * positions + group * go * positions + tile.p0;
            for o in 0..go {
                rows[o * width + i * tile.cols..][..tile.cols]
                    .copy_from_slice(&dy[src + o * positions..][..tile.cols]);
            }
        }
    }

    /// The inverse of [`Conv2d::gather_rows`] for whole-image tiles: writes each image's rows
    /// of `rows` (`go x width`) into `images` (the tile's images of `y`), adding the bias.
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
        let job = |(index, plane): (usize, &mut [f32])| {
            let (i, channel) = (index / g.out_channels, index % g.out_channels);
            if channel / go != group {
                return;
            }
            let o = channel - group * go;
            let src = &rows[o * width + i * positions..][..positions];
            let b = bias.map_or(0.0, |b| b[channel]);
            for (d, s) in plane.iter_mut().zip(src) {
                *d = s + b;
            }
        };
        if rows.len() >= PARALLEL_LOWERING_MIN {
            images.par_chunks_mut(positions).enumerate().for_each(job);
        } else {
            images.chunks_mut(positions).enumerate().for_each(job);
        }
    }

    /// im2col of one group over one tile into `col` (`k x width`, images side by side).
    fn lower(&self, x: &[f32], group: usize, tile: Tile, col: &mut Vec<f32>) {
        let g = &self.geometry;
        let (gi, plane, taps) = (g.group_in(), g.plane(), g.kernel_h * g.kernel_w);
        let width = tile.width();
        col.resize(g.col_rows() * width, 0.0);
        let per_channel = taps * width;
        let job = |(c, rows): (usize, &mut [f32])| {
            let x_base = group * gi * plane + c * plane;
            for i in 0..tile.images {
                let x_plane = &x[(tile.image + i) * g.in_channels * plane + x_base..][..plane];
                im2col_channel(
                    g,
                    x_plane,
                    tile.p0,
                    tile.cols,
                    &mut rows[i * tile.cols..],
                    width,
                );
            }
        };
        if col.len() >= PARALLEL_LOWERING_MIN {
            col.par_chunks_mut(per_channel).enumerate().for_each(job);
        } else {
            col.chunks_mut(per_channel).enumerate().for_each(job);
        }
    }

    /// col2im of one group over one tile, adding `col` (`k x width`) into `images` (the
    /// tile's images of `dx`; only this group's channel planes change).
    fn unlower(&self, col: &[f32], group: usize, tile: Tile, images: &mut [f32]) {
        let g = &self.geometry;
        let (gi, plane, taps) = (g.group_in(), g.plane(), g.kernel_h * g.kernel_w);
        let width = tile.width();
        let job = |(index, dx_plane): (usize, &mut [f32])| {
            let (i, c) = (index / g.in_channels, index % g.in_channels);
            if c / gi != group {
                return;
            }
            let rows = &col[(c - group * gi) * taps * width + i * tile.cols..];
            col2im_channel(g, rows, width, tile.p0, tile.cols, dx_plane);
        };
        if col.len() >= PARALLEL_LOWERING_MIN {
            images.par_chunks_mut(plane).enumerate().for_each(job);
        } else {
            images.chunks_mut(plane).enumerate().for_each(job);
        }
    }
}

/// Buffers reused across tiles and calls: each thread keeps its last pair (at most
/// [`COL_BUDGET`] floats of columns plus a tile of output rows), so a training loop does not
/// allocate and zero them on every call.
#[derive(Default)]
struct Scratch {
    /// The lowered input of a tile, `k x width`.
    col: Vec<f32>,
    /// Output rows of a tile, `go x width`.
    rows: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

impl Scratch {
    /// This thread's buffers (empty if another call on this thread holds them).
    fn take() -> Scratch {
        SCRATCH.with(|cell| cell.take())
    }

    /// Hands the buffers back for the next call on this thread.
    fn give_back(self) {
        SCRATCH.with(|cell| cell.set(self));
    }
}

/// Where a batch of equally shaped matrices sits in an NCHW buffer: `count` items of
/// `rows x cols` at row stride `row_stride`, the first at `offset`, each `stride` after the last.
#[derive(Debug, Clone, Copy)]
struct Items {
    offset: usize,
    count: usize,
    stride: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl Items {
    fn view<'a>(&self, data: &'a [f32]) -> Result<MatBatchRef<'a>> {
        MatBatchRef::new(
            &data[self.offset.min(data.len())..],
            self.count,
            self.stride,
            self.rows,
            self.cols,
            self.row_stride,
            1,
        )
    }

    fn view_mut<'a>(&self, data: &'a mut [f32]) -> Result<MatBatchMut<'a>> {
        let len = data.len();
        MatBatchMut::new(
            &mut data[self.offset.min(len)..],
            self.count,
            self.stride,
            self.rows,
            self.cols,
            self.row_stride,
            1,
        )
    }
}

fn check_len(what: &str, data: &[f32], shape: [usize; 4]) -> Result<()> {
    let want: usize = shape.iter().product();
    if data.len() != want {
        return Err(KernelError::ShapeMismatch {
            op: "conv2d",
            detail: format!(
                "{what} of shape {shape:?} needs {want} elements, got {}",
                data.len()
            ),
        });
    }
    Ok(())
}
