//! 2-D convolution over NCHW f32 tensors: forward, gradient of the input, of the weight and of
//! the bias, for any kernel size, stride, zero padding, dilation and groups.
//!
//! A 1x1, stride-1 convolution is a plain matrix product per image. Everything else is an
//! implicit GEMM: the forward pass and the weight gradient lower the input (im2col) a block at
//! a time straight into the micro-panels the GEMM micro-kernel reads, so the lowered matrix
//! never exists and is never packed a second time; the weights are packed once per call.
//! Whole output rows are lowered from a padded, column-phase-split copy of the input rows they
//! reach, so each lowered row is a plain copy even for strided kernels.
//! The input gradient of a stride-1 convolution is the forward convolution of the output
//! gradient with the flipped weights; otherwise it is a GEMM into a column buffer bounded by
//! [`COL_BUDGET`] floats (never by the batch), added back with col2im. Small stride-1 layers
//! take shortcuts: the forward pass over flat rows (`flat.rs`), with one input channel per
//! group a direct weight gradient (`direct.rs`), with 16 output channels per group on AVX-512
//! a direct forward pass and weight gradient vectorised across them (`channels.rs`), and with
//! rows at most 16 wide on AVX-512 a direct input gradient, one register per row
//! (`input_rows.rs`).
//!
//! Every output element is one dot product summed in a fixed order, and the weight gradient
//! sums fixed segments of images in a fixed order, so results are bit-identical at any thread
//! count.
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

#[cfg(target_arch = "x86_64")]
mod channels;
#[cfg(target_arch = "x86_64")]
mod channels_forward;
mod dense;
mod direct;
mod epilogue;
mod flat;
#[cfg(target_arch = "x86_64")]
mod flat_direct;
mod geometry;
#[cfg(target_arch = "x86_64")]
mod input_rows;
mod lowered_panels;
mod lowering;
mod padded;
mod partition;
pub mod plan;
mod prepared;
mod small_images;
mod weight_gradient;
mod winograd;
mod winograd_packed_weights;
mod winograd_weight;

use rayon::prelude::*;

pub use epilogue::Epilogue;
pub use geometry::{Conv2dGeometry, Conv2dParams};
pub use plan::{ConvPath, ConvPlan, Pass, WeightUse};
pub use prepared::PreparedWeights;

use crate::error::{KernelError, Result};
use crate::gemm::implicit::{GroupWeights, PackedA, gemm_implicit};
use crate::gemm::{
    MatBatchMut, MatBatchRef, MatMut, MatRef, PARALLEL_MIN_FLOPS, gemm_batched_on, gemm_on,
};
use crate::isa::Isa;
use crate::reduce::sum_f64;
use lowered_panels::pack_lowered;
use lowering::{Window, col2im_channel, im2col_row};
use partition::Tile;

/// Floats of lowered output gradient (the columns col2im adds back) one strided input-gradient
/// call holds at a time: 1 MiB, so a tile's columns are still in L2 when col2im reads them.
pub const COL_BUDGET: usize = 1 << 18;

/// The weight gradient's reduction over the batch is cut into at most this many segments of
/// whole images, summed side by side into partials: enough to keep two to eight cores busy
/// without splitting dW's columns, which would make every core pack every block of dy and
/// lower the input twice.
const WEIGHT_GRADIENT_SEGMENTS: usize = 8;

/// Below this many lowered floats per tile, im2col stays on one thread.
const PARALLEL_LOWERING_MIN: usize = 1 << 15;

/// A convolution of fixed geometry, ready to run forward and backward. Each pass runs the
/// path [`plan::plan`] chooses for the geometry and instruction set, or a forced one
/// ([`Conv2d::with_path`], `VENTRAL_CONV`) where that path serves the pass.
#[derive(Debug, Clone, Copy)]
pub struct Conv2d {
    geometry: Conv2dGeometry,
    isa: Isa,
    forced: Option<ConvPath>,
    weights: WeightUse,
}

impl Conv2d {
    /// A convolution of input shape `[N, C, H, W]` with weight shape `[O, C / groups, KH, KW]`,
    /// forcing the path `VENTRAL_CONV` names, if any, where it serves (see [`plan`]).
    ///
    /// # Errors
    /// As [`Conv2dGeometry::new`]; [`KernelError::InvalidArgument`] if `VENTRAL_CONV` holds
    /// an unknown path name ([`plan::parse_forced`]).
    pub fn new(input: [usize; 4], weight: [usize; 4], params: Conv2dParams) -> Result<Self> {
        Ok(Self {
            geometry: Conv2dGeometry::new(input, weight, params)?,
            isa: Isa::detect(),
            forced: plan::forced_from_env()?,
            weights: WeightUse::PerCall,
        })
    }

    /// The same convolution with `path` forced for every pass it serves (the others keep their
    /// planned path), or with `None` the planner's choice for every pass, ignoring
    /// `VENTRAL_CONV` (for tests and benchmarks).
    pub fn with_path(self, path: Option<ConvPath>) -> Self {
        Self {
            forced: path,
            ..self
        }
    }

    /// The same convolution planned for weights used as `weights` says: inference, which
    /// prepares the weights once ([`Conv2d::prepare_forward`]) and reuses them, passes
    /// [`WeightUse::Prepared`], so paths that transform the weights pay on smaller inputs.
    pub fn with_weight_use(self, weights: WeightUse) -> Self {
        Self { weights, ..self }
    }

    /// The path each pass runs.
    pub fn plan(&self) -> ConvPlan {
        ConvPlan {
            forward: self.path(Pass::Forward),
            input_gradient: self.path(Pass::InputGradient),
            weight_gradient: self.path(Pass::WeightGradient),
        }
    }

    /// The path `pass` runs.
    fn path(&self, pass: Pass) -> ConvPath {
        plan::choose(&self.geometry, self.isa, pass, self.weights, self.forced)
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
        self.forward_with(x, w, bias, Epilogue::Identity, y)
    }

    /// `y = epilogue(conv(x, w) + bias)`: the forward pass with an activation fused in, as
    /// inference runs `conv → ReLU`. The implicit GEMM and Winograd paths apply it to each
    /// block of output while it is in cache; the others in one pass after. Same bits as
    /// [`Conv2d::forward`] followed by the separate activation.
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] if a slice's length does not match its shape.
    pub fn forward_with(
        &self,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        epilogue: Epilogue,
        y: &mut [f32],
    ) -> Result<()> {
        self.check_forward(x, w, bias, y)?;
        self.forward_on(x, w, None, bias, epilogue, y)
    }

    /// The length checks of a forward pass.
    fn check_forward(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &[f32]) -> Result<()> {
        let g = &self.geometry;
        check_len("input", x, g.input_shape())?;
        check_len("weight", w, g.weight_shape())?;
        check_len("output", y, g.output_shape())?;
        if let Some(b) = bias {
            check_len("bias", b, [g.out_channels, 1, 1, 1])?;
        }
        Ok(())
    }

    /// [`Conv2d::forward_with`] after the length checks, on `prepared` weights (made by
    /// [`Conv2d::prepare_forward`] from `w` for this path) where given.
    fn forward_on(
        &self,
        x: &[f32],
        w: &[f32],
        prepared: Option<&[PackedA]>,
        bias: Option<&[f32]>,
        epilogue: Epilogue,
        y: &mut [f32],
    ) -> Result<()> {
        let g = &self.geometry;
        match self.path(Pass::Forward) {
            ConvPath::Implicit => return self.forward_implicit(x, w, prepared, bias, epilogue, y),
            ConvPath::Winograd => {
                return winograd::forward(self.isa, g, x, w, prepared, bias, epilogue, y);
            }
            ConvPath::SmallImages => self.forward_small_images(x, w, bias, y)?,
            ConvPath::Dense => dense::forward(self.isa, g, x, w, bias, y)?,
            #[cfg(target_arch = "x86_64")]
            ConvPath::Channels => {
                self.forward_channels(x, w, bias, epilogue, y);
                return Ok(());
            }
            #[cfg(target_arch = "x86_64")]
            ConvPath::Flat if matches!(self.isa, Isa::Avx512 | Isa::Avx2Fma) => {
                self.forward_flat_direct(x, w, bias, epilogue, y);
                return Ok(());
            }
            ConvPath::Flat => self.forward_flat(x, w, prepared, bias, y)?,
            ConvPath::Pointwise => {
                return self.forward_pointwise(x, w, prepared, bias, epilogue, y);
            }
            other => unreachable!("{other} does not serve the forward pass"),
        }
        epilogue.apply_all(y);
        Ok(())
    }

    /// Group `group`'s weights as the `go x k` matrix the GEMM paths multiply.
    fn group_matrix<'a>(&self, w: &'a [f32], group: usize) -> Result<MatRef<'a>> {
        let (go, k) = (self.geometry.group_out(), self.geometry.col_rows());
        MatRef::row_major(&w[group * go * k..][..go * k], go, k)
    }

    /// Group `group`'s packed weights: from `prepared` (one per group) if given, else packed
    /// from `w` for this call.
    fn group_weights<'a>(
        &self,
        w: &[f32],
        prepared: Option<&'a [PackedA]>,
        group: usize,
    ) -> Result<GroupWeights<'a>> {
        Ok(match prepared {
            Some(p) => GroupWeights::Prepared(&p[group]),
            None => GroupWeights::Packed(PackedA::new(self.isa, self.group_matrix(w, group)?)),
        })
    }

    /// The forward pass as an implicit GEMM.
    fn forward_implicit(
        &self,
        x: &[f32],
        w: &[f32],
        prepared: Option<&[PackedA]>,
        bias: Option<&[f32]>,
        epilogue: Epilogue,
        y: &mut [f32],
    ) -> Result<()> {
        let g = &self.geometry;
        let (go, k) = (g.group_out(), g.col_rows());
        // Implicit GEMM: per group, y[n, group] (go x P) = W_g (go x k) * lowered x[n],
        // the lowered input packed block by block straight into micro-panels.
        let (gi, plane) = (g.group_in(), g.plane());
        let in_per_image = g.in_channels * plane;
        for group in 0..g.params.groups {
            let packed = self.group_weights(w, prepared, group)?;
            let nr = packed.nr();
            gemm_implicit(
                &packed,
                bias.map(|b| &b[group * go..][..go]),
                epilogue,
                self.output_planes(group).view_mut(y)?,
                &self.position_pieces(k),
                |image, pc, kc, jc, nc, scratch, out| {
                    let planes = &x[image * in_per_image + group * gi * plane..][..gi * plane];
                    if !(jc.is_multiple_of(g.out_w) && nc.is_multiple_of(g.out_w)) {
                        // Ranges of a row wider than a piece: lower from the input.
                        pack_lowered(nr, kc, nc, out, |p, j0, row| {
                            let (c, ki, kj) = self.tap(pc + p);
                            im2col_row(g, &planes[c * plane..][..plane], ki, kj, jc + j0, row);
                        });
                        return;
                    }
                    // Whole output rows: copy the padded input they reach once, then every
                    // lowered row is a copy from it.
                    let window = Window::new(g, jc / g.out_w, (jc + nc) / g.out_w);
                    if pc == 0 {
                        window.fill(g, planes, scratch);
                    }
                    pack_lowered(nr, kc, nc, out, |p, j0, row| {
                        let (c, ki, kj) = self.tap(pc + p);
                        window.lower(g, scratch, c, ki, kj, jc + j0, row);
                    });
                },
            );
            packed.finish();
        }
        Ok(())
    }

    /// The forward pass of a pointwise convolution: per group and image, y (go x P) =
    /// W_g (go x gi) * x (gi x P), the input planes packed block by block as they are (a 1x1
    /// kernel lowers nothing), with the bias and epilogue applied per block like the implicit
    /// GEMM's (and its packed weights, so inference reuses them).
    fn forward_pointwise(
        &self,
        x: &[f32],
        w: &[f32],
        prepared: Option<&[PackedA]>,
        bias: Option<&[f32]>,
        epilogue: Epilogue,
        y: &mut [f32],
    ) -> Result<()> {
        let g = &self.geometry;
        let (go, k) = (g.group_out(), g.col_rows());
        for group in 0..g.params.groups {
            let packed = self.group_weights(w, prepared, group)?;
            let inputs = self.input_planes(group).view(x)?;
            gemm_implicit(
                &packed,
                bias.map(|b| &b[group * go..][..go]),
                epilogue,
                self.output_planes(group).view_mut(y)?,
                &self.position_pieces(k),
                |image, pc, kc, jc, nc, _, out| {
                    packed.pack_b(inputs.item(image).block(pc, jc, kc, nc), out);
                },
            );
            packed.finish();
        }
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
        match self.path(Pass::InputGradient) {
            #[cfg(target_arch = "x86_64")]
            ConvPath::InputRows => {
                self.backward_input_rows(dy, w, dx);
                Ok(())
            }
            ConvPath::Transposed => {
                // dx is the forward convolution of dy with the flipped, transposed weights.
                let transposed = self.transposed().expect("the planner checked the geometry");
                if transposed.path(Pass::Forward) == ConvPath::Winograd {
                    // Its kernels read in place from `w`, without the flipped copy.
                    winograd::input_gradient(self.isa, &transposed.geometry, dy, w, dx)
                } else {
                    transposed.forward(dy, &self.flipped_weights(w), None, dx)
                }
            }
            ConvPath::Col2im | ConvPath::Pointwise => self.backward_input_gemm(dy, w, dx),
            ConvPath::Dense => dense::input_gradient(self.isa, g, dy, w, dx),
            other => unreachable!("{other} does not serve the input gradient"),
        }
    }

    /// The input gradient as GEMMs: one per image for a pointwise convolution, else into
    /// column buffers added back with col2im.
    fn backward_input_gemm(&self, dy: &[f32], w: &[f32], dx: &mut [f32]) -> Result<()> {
        let g = &self.geometry;
        let (positions, in_per_image) = (g.positions(), g.in_channels * g.plane());
        let (go, k) = (g.group_out(), g.col_rows());
        if !g.is_pointwise() {
            dx.fill(0.0);
        }
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
                // Ranges of one image overlap in dx through the kernel's reach: in order within
                // an image, images side by side.
                let per_image = tiles.len() / g.batch.max(1);
                let run_image = |(n, image): (usize, &mut [f32])| -> Result<()> {
                    let mut scratch = Scratch::take();
                    let result = tiles[n * per_image..][..per_image]
                        .iter()
                        .try_for_each(|&tile| run_tile(tile, image, &mut scratch));
                    scratch.give_back();
                    result
                };
                let flops = 2 * g.macs();
                if g.batch > 1 && flops >= PARALLEL_MIN_FLOPS {
                    dx.par_chunks_mut(in_per_image)
                        .enumerate()
                        .try_for_each(run_image)?;
                } else {
                    dx.chunks_mut(in_per_image)
                        .enumerate()
                        .try_for_each(run_image)?;
                }
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
            // f64 over images in order (each plane in eight lanes, `sum_f64`): exact enough and
            // independent of the thread count.
            let total: f64 = (0..g.batch)
                .map(|n| sum_f64(&dy[(n * g.out_channels + o) * positions..][..positions]))
                .sum();
            *out = total as f32;
        });
        Ok(())
    }

    /// The forward convolution whose output is this one's input gradient, when there is one:
    /// for stride 1, `dx` is `dy` convolved with the flipped weights, with channels swapped
    /// and the padding that restores the input size (the kernel's reach minus the padding).
    fn transposed(&self) -> Option<Conv2d> {
        let g = &self.geometry;
        let params = plan::transposed_params(g)?;
        let input = [g.batch, g.out_channels, g.out_h, g.out_w];
        let weight = [g.in_channels, g.group_out(), g.kernel_h, g.kernel_w];
        let conv = Conv2d::new(input, weight, params)
            .ok()?
            .with_isa(self.isa)
            .ok()?
            // Its own forward pass follows the planner, whatever this convolution forces.
            .with_path(None);
        (conv.geometry.output_shape() == g.input_shape()).then_some(conv)
    }

    /// The weights of [`Conv2d::transposed`]: `w'[group, c, o, taps - 1 - t] = w[group, o, c,
    /// t]`, input and output channels swapped within each group and the kernel turned 180°.
    fn flipped_weights(&self, w: &[f32]) -> Vec<f32> {
        let g = &self.geometry;
        let (gi, go, taps) = (g.group_in(), g.group_out(), g.kernel_h * g.kernel_w);
        let mut out = vec![0.0; w.len()];
        for group in 0..g.params.groups {
            for o in 0..go {
                for c in 0..gi {
                    let src = &w[((group * go + o) * gi + c) * taps..][..taps];
                    let dst = &mut out[((group * gi + c) * go + o) * taps..][..taps];
                    for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                        *d = *s;
                    }
                }
            }
        }
        out
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
        self.output_planes_of(group, self.geometry.positions())
    }

    /// Every image's output planes of one group in a buffer laid out like the output but
    /// with planes of `len` floats: each a `go x len` matrix.
    fn output_planes_of(&self, group: usize, len: usize) -> Items {
        let g = &self.geometry;
        let go = g.group_out();
        Items {
            offset: group * go * len,
            count: g.batch,
            stride: g.out_channels * len,
            rows: go,
            cols: len,
            row_stride: len,
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
