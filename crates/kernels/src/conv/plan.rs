//! The convolution planner: which path computes each pass of a geometry on an instruction set.
//!
//! [`plan`] is the one place that chooses; [`ConvPath::serves`] says which paths can compute a
//! pass of a geometry at all (a path's hard preconditions, not its speed). `VENTRAL_CONV=NAME`
//! (read once per process, names as [`ConvPath::name`]) or [`super::Conv2d::with_path`]
//! forces a path for every pass it serves; a pass it cannot serve keeps its planned path, so
//! `VENTRAL_CONV=channels` on AVX2 changes nothing and `VENTRAL_CONV=flat` changes only the
//! forward pass. An unknown name is reported: [`super::Conv2d::new`] returns
//! [`KernelError::InvalidArgument`] naming it, so a typo cannot benchmark the planned path
//! under a forced path's label. Every path gives results within the f32 rounding bound of
//! the reference and bit-identical at any thread count; different paths may differ in the
//! last bits (they sum in different orders).
//!
//! ```
//! use ventral_kernels::conv::{Conv2d, Conv2dParams, ConvPath};
//!
//! // LeNet-5's first layer: narrow stride-1 rows, one input channel.
//! let conv = Conv2d::new([64, 1, 28, 28], [6, 1, 5, 5], Conv2dParams::default().padding(2))?
//!     .with_path(None);
//! assert_eq!(conv.plan().to_string(), "y:flat dx:col2im dw:direct");
//! // Forcing the implicit GEMM changes the passes it serves (forward, weight gradient) only.
//! let forced = conv.with_path(Some(ConvPath::Implicit));
//! assert_eq!(forced.plan().to_string(), "y:implicit dx:col2im dw:implicit");
//! // Flat rows need stride 1: on a strided layer the forward pass keeps its planned path.
//! let strided = Conv2d::new([1, 3, 32, 32], [8, 3, 3, 3], Conv2dParams::default().stride(2))?;
//! let flat = strided.with_path(Some(ConvPath::Flat));
//! assert_eq!(flat.plan(), strided.with_path(None).plan());
//! # Ok::<(), ventral_kernels::KernelError>(())
//! ```

use std::fmt;
use std::sync::OnceLock;

use super::dense::{self, DENSE_MIN_BATCH};
use super::winograd;
use super::{COL_BUDGET, Conv2dGeometry, Conv2dParams};
#[cfg(target_arch = "x86_64")]
use super::{channels, input_rows};
use crate::error::{KernelError, Result};
use crate::isa::Isa;

/// Output rows narrower than this go through the flat forward pass; wider rows lower
/// efficiently as they are.
const FLAT_MAX_OUT_W: usize = 32;

/// Rows at most this wide take the channel-vectorised path (`channels.rs`, AVX-512) for layers
/// of 16 output channels per group: one register per position holds every channel, so wider
/// rows cost nothing extra to lower. ResNet-20's 16 -> 16 layer at 32x32 (batch 64, Zen 5)
/// ran its forward pass in 2.1 ms against 3.9-5.1 ms through the implicit GEMM at 1 thread
/// (1.1 against 2.5-3.2 ms at 2), and its weight gradient in 4.2-4.7 against 4.0-5.2 ms
/// (2.1-2.7 against 2.6-3.1 at 2). The plain flat path gains nothing there on AVX2 (6.4
/// against 6.0-6.9 ms), so [`FLAT_MAX_OUT_W`] stays.
const CHANNELS_MAX_OUT_W: usize = 32;

/// Layers with at most this many input channels per group (an image's colours) and kernels of
/// at least [`CHANNELS_MIN_KERNEL_AREA`] taps run their forward pass on the channel-vectorised
/// path when their output channels fill whole registers: lowering such a layer copies every
/// pixel kh * kw / stride^2 times for a GEMM only 3 * kh * kw deep. Forward ms, implicit GEMM
/// against channels (AMD EPYC Zen 5, medians of 15, two alternating runs): AlexNet's 11x11 / 4
/// (batch 16) 18.9-19.8 / 13.3 at 1 thread, 10.9-13.9 / 6.7-7.1 at 2; ResNet's 7x7 / 2 at
/// batch 1 1.9-2.0 / 1.5, at 2 threads 0.97-1.05 / 0.76-0.82; at batch 16 32-35 / 25-26.
/// VGG's 3x3 first layer (27 taps) ran slower: 2.5-3.0 / 3.7 (CIFAR, batch 64).
const CHANNELS_MAX_GROUP_IN: usize = 4;

/// See [`CHANNELS_MAX_GROUP_IN`]: 5x5 and up.
const CHANNELS_MIN_KERNEL_AREA: usize = 25;

/// Strided layers with kernels of at least 3x3 whose lowered rows (input channels x taps per
/// group) number at most this many run their forward pass on the channel-vectorised path:
/// the implicit GEMM lowers strided windows slowly, and a block's 64 output channels' weights
/// (at most 160 KiB here) stay in L2 from block to block. Forward ms at 1 thread, implicit
/// against channels (AMD EPYC Zen 5, medians of 9-15, two alternating runs): ResNet-20's 16
/// -> 32 (batch 128) 5.9 / 3.0-3.2 and 32 -> 64 3.7-4.8 / 2.6-2.7; ResNet-18's 64 -> 128 on
/// 56x56 1.06-1.27 / 0.86 at batch 1 and 19.4-19.7 / 11.8-12.2 at batch 16. With 128 input
/// channels (1,152 rows) the weights no longer fit: 128 -> 256 on 28x28 at batch 16 14.6-15.6
/// / 17.8-18.8. Strided 1x1 projections tie or lose.
const CHANNELS_MAX_STRIDED_ROWS: usize = 640;

/// At most this many output channels per group take the flat forward pass: lowering costs the
/// same whatever the number of output channels, so with more of them the multiply dwarfs it
/// and the flat rows' extra columns cost more than they save (VGG-11's 8x8 and 4x4 layers ran
/// 20 % slower flat).
const FLAT_MAX_GROUP_OUT: usize = 16;

/// Images with fewer output positions than this take the batch-folded path: one micro-panel
/// of the widest register tile (AVX-512's 16 columns). On VGG-11 (CIFAR)'s 512 -> 512 layer
/// on 2x2 maps (batch 64), 1 thread, medians against the implicit GEMM: forward 55 -> 25 ms, input
/// gradient 58 -> 25 ms, weight gradient 96 -> 29 ms; on 4x4 maps the implicit GEMM wins the
/// forward and input gradient, so the bound is strict.
const SMALL_IMAGE_POSITIONS: usize = 16;

/// The input gradient of a stride-1 convolution with at least this many input channels per
/// group runs as a forward convolution (whose output channels are these input channels);
/// with fewer, its GEMM would have too few rows to fill a register tile.
const TRANSPOSED_MIN_CHANNELS: usize = 4;

/// Input and output channels from which a 3x3 stride-1 forward pass runs by Winograd
/// (F(4x4, 3x3) since; it was measured with F(2x2, 3x3), which F(4x4) beats on every one of
/// these layers). Forward ms at 1 thread, implicit GEMM against Winograd (AMD EPYC Zen 5,
/// `ventral bench conv`, one noisy run each): 64 -> 128 channels on 16x16 (batch 64) 17.9 /
/// 12.1, 256 -> 256 on 8x8 35.3 / 20.2, 512 -> 512 on 4x4 55.9 / 24.6, ResNet-20's 32 on
/// 16x16 (batch 128) 7.5 / 5.3 and 64 on 8x8 6.8 / 4.8; at 2 threads the last two tie.
/// With 16 channels the transforms cost more than the products save (ResNet-20's first
/// stage: 2.1 ms on the channel-vectorised path, 5.2 by Winograd before its transforms were
/// vectorised).
const WINOGRAD_MIN_CHANNELS: usize = 32;

/// 4x4 output tiles a Winograd call needs at least (over the batch): its 36 transformed
/// weight matrices (4x the weights, written and packed on every call) cost more than the
/// implicit GEMM's packing, which only many tiles repay. ResNet-18 at batch 1, 2 threads
/// (`ventral bench infer`, AMD EPYC Zen 5, two alternating runs): with its 14x14 layers (16
/// tiles) on Winograd 28.1-28.6 images/s, with them on the implicit GEMM (bound 48) 34.6-36.5;
/// a bound of 96, which also moves the 28x28 layers (49 tiles), measured no different.
const WINOGRAD_MIN_TILES: usize = 48;

/// [`WINOGRAD_MIN_TILES`] for weights prepared once and reused ([`WeightUse::Prepared`]) on
/// AVX2: the transforms and packings are then paid once, not per call, and what is left is
/// reading 4x the weights per call. Forward ms at batch 1, implicit GEMM against Winograd on
/// prepared weights, alternating in one process (AMD EPYC Zen 3, 1 thread): 256 channels on
/// 14x14 (16 tiles, ResNet-50's third stage) 2.8-3.2 / 1.25-1.7, 128 on 14x14 0.78 / 0.40,
/// 32 on 14x14 0.074 / 0.055; at 2 threads 2.3 / 0.96 and 0.63 / 0.29. Below 16 tiles it
/// varies: 256 on 12x12 (9 tiles) 2.1 / 1.6 but 32 on 12x12 0.052 / 0.065; 512 on 7x7 (4
/// tiles) 4.1 / 5.8. Not measured on AVX-512, which keeps [`WINOGRAD_MIN_TILES`].
const WINOGRAD_MIN_TILES_PREPARED_AVX2: usize = 16;

/// How a convolution's weights arrive, which the planner weighs: a path that transforms the
/// weights (Winograd) pays for that on every call, unless they are prepared once
/// ([`super::Conv2d::prepare_forward`]) and reused, as inference does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightUse {
    /// New weights on every call (training).
    #[default]
    PerCall,
    /// The forward pass runs on weights prepared once and reused from call to call.
    Prepared,
}

/// One of the three passes a convolution layer runs (the bias gradient has a single path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pass {
    /// `y = conv(x, w) + bias`.
    Forward,
    /// `dx` from `dy` and `w`.
    InputGradient,
    /// `dw` from `x` and `dy`.
    WeightGradient,
}

impl Pass {
    /// The three passes, in the order a training step meets them.
    pub const ALL: [Pass; 3] = [Pass::Forward, Pass::InputGradient, Pass::WeightGradient];

    /// The pass's name in benchmark tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::InputGradient => "backward_input",
            Pass::WeightGradient => "backward_weight",
        }
    }

    /// The length of the pass's output for `g`: `y`, `dx` or `dw`.
    pub fn output_len(self, g: &Conv2dGeometry) -> usize {
        let shape = match self {
            Pass::Forward => g.output_shape(),
            Pass::InputGradient => g.input_shape(),
            Pass::WeightGradient => g.weight_shape(),
        };
        shape.iter().product()
    }
}

/// A way to compute a pass of a convolution. Which passes each serves is in its doc and in
/// [`ConvPath::serves`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvPath {
    /// A 1x1, stride-1, unpadded convolution as batched GEMMs (all passes).
    Pointwise,
    /// The implicit GEMM: the input lowered block by block straight into micro-panels
    /// (forward, weight gradient; not pointwise).
    Implicit,
    /// Whole images lowered side by side and multiplied by one GEMM per tile (`small_images.rs`;
    /// forward, weight gradient; whole images must fit [`COL_BUDGET`]).
    SmallImages,
    /// The forward pass over rows as wide as the padded input (`flat.rs`; stride 1,
    /// dilation 1, not pointwise).
    Flat,
    /// Direct convolution with one zmm register holding 16 output channels (`channels.rs`,
    /// `channels_forward.rs`; AVX-512, dilation 1; forward with whole registers of output
    /// channels per group at any stride; weight gradient at stride 1 with exactly 16 output
    /// channels per group and kernels at most 8 wide).
    Channels,
    /// Register-blocked dot products over flat rows (`direct.rs`; weight gradient, stride 1,
    /// dilation 1, not pointwise; planned for one input channel per group, and on AVX-512
    /// for few channels over wide rows).
    Direct,
    /// One zmm register per input row and channel (`input_rows.rs`; AVX-512, input gradient,
    /// stride 1, dilation 1, not pointwise, rows at most 16 wide, at most 12 input channels
    /// per group).
    InputRows,
    /// The forward convolution of `dy` with the flipped weights, itself planned as a forward
    /// pass (input gradient, stride 1, padding within the kernel's reach).
    Transposed,
    /// A GEMM into a column buffer of at most [`COL_BUDGET`] floats added back with col2im
    /// (input gradient, not pointwise).
    Col2im,
    /// Winograd's F(4x4, 3x3): 36 GEMMs over transformed 4x4 tiles instead of 144
    /// multiply-adds per tile and channel pair (`winograd.rs`, `winograd_weight.rs`; forward
    /// and weight gradient, 3x3 kernels, stride 1, dilation 1, one group).
    Winograd,
    /// The whole layer as one dense `C Q x K P` matrix over images of `Q` pixels and `P`
    /// positions, so each pass is one plain GEMM without lowering (`dense.rs`; all passes,
    /// one group, fewer input pixels than kernel taps, the matrix within
    /// `dense::DENSE_MAX_FLOATS`).
    Dense,
}

impl ConvPath {
    /// Every path.
    pub const ALL: [ConvPath; 11] = [
        ConvPath::Pointwise,
        ConvPath::Implicit,
        ConvPath::SmallImages,
        ConvPath::Flat,
        ConvPath::Channels,
        ConvPath::Direct,
        ConvPath::InputRows,
        ConvPath::Transposed,
        ConvPath::Col2im,
        ConvPath::Winograd,
        ConvPath::Dense,
    ];

    /// A short lowercase name, as accepted by `VENTRAL_CONV` and printed by benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            ConvPath::Pointwise => "pointwise",
            ConvPath::Implicit => "implicit",
            ConvPath::SmallImages => "small_images",
            ConvPath::Flat => "flat",
            ConvPath::Channels => "channels",
            ConvPath::Direct => "direct",
            ConvPath::InputRows => "input_rows",
            ConvPath::Transposed => "transposed",
            ConvPath::Col2im => "col2im",
            ConvPath::Winograd => "winograd",
            ConvPath::Dense => "dense",
        }
    }

    /// The path named `name` (as [`ConvPath::name`], case-insensitive, surrounding spaces
    /// ignored).
    pub fn from_name(name: &str) -> Option<ConvPath> {
        let name = name.trim().to_ascii_lowercase();
        ConvPath::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this path can compute `pass` of `g` on `isa`: its hard preconditions, not
    /// whether it is the fastest (that is [`plan`]'s call).
    pub fn serves(self, g: &Conv2dGeometry, isa: Isa, pass: Pass) -> bool {
        use Pass::{Forward, InputGradient, WeightGradient};
        let p = g.params;
        let dense_stride_1 = p.stride == (1, 1) && p.dilation == (1, 1);
        match (self, pass) {
            (ConvPath::Pointwise, _) => g.is_pointwise(),
            (ConvPath::Implicit, Forward | WeightGradient) => !g.is_pointwise(),
            (ConvPath::SmallImages, Forward | WeightGradient) => {
                !g.is_pointwise() && g.positions() * g.col_rows() <= COL_BUDGET
            }
            (ConvPath::Flat, Forward) => dense_stride_1 && !g.is_pointwise(),
            (ConvPath::Channels, Forward) => {
                p.dilation == (1, 1) && !g.is_pointwise() && channels_serve(g, isa, pass)
            }
            (ConvPath::Channels, WeightGradient) => {
                dense_stride_1 && !g.is_pointwise() && channels_serve(g, isa, pass)
            }
            (ConvPath::Direct, WeightGradient) => dense_stride_1 && !g.is_pointwise(),
            (ConvPath::InputRows, InputGradient) => {
                dense_stride_1 && !g.is_pointwise() && input_rows_serve(g, isa)
            }
            (ConvPath::Transposed, InputGradient) => transposed_params(g).is_some(),
            (ConvPath::Col2im, InputGradient) => !g.is_pointwise(),
            (ConvPath::Winograd, Forward | WeightGradient) => winograd::serves(g),
            (ConvPath::Dense, _) => dense::serves(g),
            _ => false,
        }
    }
}

impl fmt::Display for ConvPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `channels.rs`'s preconditions beyond dilation 1 (and stride 1 for the weight gradient):
/// AVX-512, whole registers of 16 output channels per group for the forward pass, and for the
/// weight gradient exactly 16 and a kernel row that fits its registers.
fn channels_serve(g: &Conv2dGeometry, isa: Isa, pass: Pass) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa == Isa::Avx512
            && match pass {
                Pass::WeightGradient => {
                    g.group_out() == channels::LANES && g.kernel_w <= channels::MAX_KERNEL_W
                }
                _ => g.group_out().is_multiple_of(channels::LANES),
            }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (g, isa, pass);
        false
    }
}

/// `input_rows.rs`'s preconditions beyond stride 1 and dilation 1: AVX-512, an input row in
/// one zmm register and every input channel of a group in registers at once.
fn input_rows_serve(g: &Conv2dGeometry, isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa == Isa::Avx512
            && g.in_w <= input_rows::LANES
            && g.group_in() <= input_rows::MAX_CHANNELS
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (g, isa);
        false
    }
}

/// The parameters of the forward convolution whose output is `g`'s input gradient, when there
/// is one: for stride 1, `dx` is `dy` convolved with the flipped weights, with the padding that
/// restores the input size (the kernel's reach minus the padding).
pub(super) fn transposed_params(g: &Conv2dGeometry) -> Option<Conv2dParams> {
    let p = g.params;
    let reach = (
        p.dilation.0 * (g.kernel_h - 1),
        p.dilation.1 * (g.kernel_w - 1),
    );
    if p.stride != (1, 1) || p.padding.0 > reach.0 || p.padding.1 > reach.1 {
        return None;
    }
    Some(Conv2dParams {
        padding: (reach.0 - p.padding.0, reach.1 - p.padding.1),
        ..p
    })
}

/// The path of each pass of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvPlan {
    /// The forward pass's path.
    pub forward: ConvPath,
    /// The input gradient's path.
    pub input_gradient: ConvPath,
    /// The weight gradient's path.
    pub weight_gradient: ConvPath,
}

impl ConvPlan {
    /// The path of `pass`.
    pub fn get(&self, pass: Pass) -> ConvPath {
        match pass {
            Pass::Forward => self.forward,
            Pass::InputGradient => self.input_gradient,
            Pass::WeightGradient => self.weight_gradient,
        }
    }
}

impl fmt::Display for ConvPlan {
    /// `y:flat dx:col2im dw:direct`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "y:{} dx:{} dw:{}",
            self.forward, self.input_gradient, self.weight_gradient
        )
    }
}

/// The path that computes `pass` of `g` on `isa` when none is forced, for weights that
/// arrive on every call ([`WeightUse::PerCall`]; see [`plan_for`]).
pub fn plan(g: &Conv2dGeometry, isa: Isa, pass: Pass) -> ConvPath {
    plan_for(g, isa, pass, WeightUse::PerCall)
}

/// The path that computes `pass` of `g` on `isa` when none is forced, for weights used as
/// `weights` says. The first rule that holds wins; each rule's reason is on its line.
pub fn plan_for(g: &Conv2dGeometry, isa: Isa, pass: Pass, weights: WeightUse) -> ConvPath {
    let p = g.params;
    let dense_stride_1 = p.stride == (1, 1) && p.dilation == (1, 1);
    // Fewer output positions than a micro-panel is wide: the implicit GEMM would fill a
    // fraction of each register tile and its weight-gradient blocks would be that shallow, so
    // whole images are folded into one product instead.
    // (The input gradient asks too: those layers skip the transposed convolution.)
    let small_images = ConvPath::SmallImages.serves(g, isa, Pass::Forward)
        && g.positions() < SMALL_IMAGE_POSITIONS;
    // Images with fewer pixels than the kernel has taps, in batches: one dense matrix does
    // each pass with a fraction of the lowered work (see `dense.rs`). VGG-11 (CIFAR)'s 512
    // -> 512 layer on 2x2 maps at batch 64 on a Xeon, against the batch-folded path and
    // col2im (interleaved in one process): forward 6.5 -> 4.6 ms, input gradient 9.6 -> 3.9,
    // weight gradient 9.5 -> 3.8 at 2 threads; 12.7 -> 9.3, 20.0 -> 7.9 and 15.9 -> 7.7 at 1.
    let dense = ConvPath::Dense.serves(g, isa, Pass::Forward) && g.batch >= DENSE_MIN_BATCH;
    // Narrow stride-1 rows with few output channels: lowering them would cost as much as the
    // multiply, and rows as wide as the padded input lower as one contiguous run each (the
    // extra columns, at most half as many again, are computed and dropped).
    let padded_w = g.in_w + 2 * p.padding.1;
    let flat_rows = dense_stride_1
        && !g.is_pointwise()
        && g.group_out() <= FLAT_MAX_GROUP_OUT
        && 2 * padded_w <= 3 * g.out_w;
    let flat = flat_rows && g.out_w < FLAT_MAX_OUT_W;
    let channels = flat_rows && g.out_w <= CHANNELS_MAX_OUT_W;
    let colour_input = g.group_in() <= CHANNELS_MAX_GROUP_IN
        && g.kernel_h * g.kernel_w >= CHANNELS_MIN_KERNEL_AREA;
    let strided_small = p.stride != (1, 1)
        && g.kernel_h >= 3
        && g.kernel_w >= 3
        && g.col_rows() <= CHANNELS_MAX_STRIDED_ROWS;
    match pass {
        Pass::Forward => {
            if dense {
                ConvPath::Dense
            } else if small_images {
                ConvPath::SmallImages
            } else if flat_rows
                && matches!(isa, Isa::Avx512 | Isa::Avx2Fma)
                && 8 * padded_w <= 9 * g.out_w
            {
                // Few output channels over rows nearly as wide as the padded input, on
                // AVX-512: flat rows read in place, 16 positions to a register (ResNet-20's
                // first stage: 4.5-4.8 ms against 5.1-5.3 on the channel-vectorised path at 1
                // thread, batch 128; 2.5-2.7 against 2.9-3.2 at 2; its 3 -> 16 first layer
                // 1.3-1.5 against 1.5-1.8; LeNet-5's first layer 0.15-0.17 against 0.21-0.28
                // through the GEMM). Narrower rows waste too many columns (LeNet-5's second
                // layer, 14 flat columns for 10: 0.31-0.35 against 0.21-0.27 by channels).
                ConvPath::Flat
            } else if channels && ConvPath::Channels.serves(g, isa, pass) {
                // Flat layers with exactly 16 output channels per group (LeNet-5's second,
                // ResNet-20's first stage) on
                // AVX-512: one register holds every channel, no lane is padding and nothing is
                // lowered (the im2col path spent half its time lowering 10-wide rows).
                ConvPath::Channels
            } else if (colour_input || strided_small) && ConvPath::Channels.serves(g, isa, pass) {
                // First layers with large kernels (AlexNet, ResNet, GoogLeNet), strided or
                // not, and strided layers with few input channels (ResNet's downsampling
                // 3x3s): no lowering, and up to 64 output channels per block of positions.
                ConvPath::Channels
            } else if flat {
                ConvPath::Flat
            } else if g.is_pointwise() {
                // One GEMM per image, reading the input in place.
                ConvPath::Pointwise
            } else if winograd_pays(g, isa, weights) && ConvPath::Winograd.serves(g, isa, pass) {
                // 3x3 stride-1 layers with enough channels that the 36 products outweigh the
                // transforms (whose cost grows with the channels, not their product). Their
                // input gradients come here too, through the transposed convolution.
                ConvPath::Winograd
            } else {
                ConvPath::Implicit
            }
        }
        Pass::InputGradient => {
            if dense {
                ConvPath::Dense
            } else if ConvPath::InputRows.serves(g, isa, pass) {
                // Narrow rows on AVX-512: one register per input row and channel, fed by
                // shifted runs of dy's rows; no column buffer.
                ConvPath::InputRows
            } else if !g.is_pointwise()
                && !small_images
                && g.group_in() >= TRANSPOSED_MIN_CHANNELS
                // The transposed convolution runs over the padded dy: worth it only when that
                // adds little work, i.e. when the input is not much larger than the output.
                && 8 * g.plane() <= 9 * g.positions()
                && ConvPath::Transposed.serves(g, isa, pass)
            {
                ConvPath::Transposed
            } else if g.is_pointwise() {
                ConvPath::Pointwise
            } else {
                // Strided, few input channels, small images, or an input much larger than
                // the output.
                ConvPath::Col2im
            }
        }
        Pass::WeightGradient => {
            if ConvPath::Direct.serves(g, isa, pass)
                && (g.group_in() == 1 || direct_rows_pay(g, isa))
            {
                // One input channel per group (a first layer, depthwise): the GEMM would have
                // a k of only kh * kw. On AVX-512 also few channels over rows about as wide as
                // the padded input (see DIRECT_MAX_GROUP_IN).
                ConvPath::Direct
            } else if dense {
                ConvPath::Dense
            } else if small_images {
                ConvPath::SmallImages
            } else if winograd_pays_for_weights(g) && ConvPath::Winograd.serves(g, isa, pass) {
                // 36 GEMMs with reductions over every tile instead of the lowered input's 9
                // taps per channel; from 16 channels, where its transforms are still cheaper
                // than the channel-vectorised path (ResNet-20's 16 -> 16 on 32x32 at batch
                // 64, AMD EPYC Zen 5, min of 3 runs: 2.81 ms against 4.12 at 1 thread, 1.62
                // against 2.27 at 2).
                ConvPath::Winograd
            } else if channels && ConvPath::Channels.serves(g, isa, pass) {
                // The forward pass's channel-vectorised layers, one kernel row of taps in
                // registers.
                ConvPath::Channels
            } else if g.is_pointwise() {
                ConvPath::Pointwise
            } else {
                ConvPath::Implicit
            }
        }
    }
}

/// On AVX-512, layers with at most this many input channels per group (and at most
/// [`DIRECT_MAX_GROUP_OUT`] output channels) whose output rows are nearly as wide as the
/// padded input (at least 8/9) take the direct weight gradient: 3 output channels x 9 taps
/// of 16-lane partial sums per block, against GEMMs or Winograd products too thin to pay
/// for their packing and transforms. Weight gradient ms at 1 thread (AMD EPYC Zen 5, medians
/// of 9-15): ResNet-20's 16 -> 16 on 32x32 at batch 128 9.6-9.8 by Winograd against 4.6-5.1
/// direct, at batch 64 3.05-3.09 by the channel-vectorised path against 2.09-2.10; its 3 ->
/// 16 first layer 2.47 (channels) against 1.08-1.12; VGG-11's 3 -> 64 (CIFAR, batch 64)
/// 2.84-3.47 implicit against 1.68-1.97. Not taken: 32 -> 32 on 16x16 (Winograd 5.9-6.1,
/// direct 5.8-7.6), 64 -> 64 on 8x8 (5.2-5.6 against 16-19: too few vectors per plane for
/// 27 accumulators' loads and stores), LeNet-5's 6 -> 16 over 10-wide rows (14-wide flat
/// rows: 0.26-0.31 channels against 0.57-0.77).
const DIRECT_MAX_GROUP_IN: usize = 16;

/// See [`DIRECT_MAX_GROUP_IN`].
const DIRECT_MAX_GROUP_OUT: usize = 64;

/// On AVX2, layers with at most [`DIRECT_MAX_GROUP_IN`] input and this many output channels
/// per group over flat rows (rows at least 2/3 of the padded width) take the direct weight
/// gradient. Weight gradient ms at 1 thread (AMD EPYC Zen 3, AVX2): ResNet-20's 16 -> 16 on
/// 32x32 at batch 64 5.1 direct against 7.5 by Winograd and 10.6 implicit; LeNet-5's 6 -> 16
/// over 14-wide rows for 10 outputs 0.98 against 1.22-1.33 implicit. Not taken: 32 -> 32 on
/// 16x16 (12.3 direct against 9.8 Winograd).
const DIRECT_MAX_GROUP_OUT_AVX2: usize = 16;

/// Whether AVX-512's direct weight gradient beats the GEMM paths on `g`, a stride-1 layer
/// with more than one input channel per group (see [`DIRECT_MAX_GROUP_IN`]).
fn direct_rows_pay(g: &Conv2dGeometry, isa: Isa) -> bool {
    let padded_w = g.in_w + 2 * g.params.padding.1;
    match isa {
        Isa::Avx512 => {
            g.group_in() <= DIRECT_MAX_GROUP_IN
                && g.group_out() <= DIRECT_MAX_GROUP_OUT
                && 8 * padded_w <= 9 * g.out_w
        }
        // AVX2's 2 x 5 blocks, on layers of at most 16 channels over flat rows (see
        // DIRECT_MAX_GROUP_OUT_AVX2).
        Isa::Avx2Fma => {
            g.group_in() <= DIRECT_MAX_GROUP_IN
                && g.group_out() <= DIRECT_MAX_GROUP_OUT_AVX2
                && 2 * padded_w <= 3 * g.out_w
        }
        Isa::Portable => false,
    }
}

/// Input and output channels from which a 3x3 stride-1 weight gradient runs by Winograd.
const WINOGRAD_WEIGHT_MIN_CHANNELS: usize = 16;

/// Whether a 3x3 stride-1 layer's weight gradient has channels and tiles enough for
/// Winograd (see [`WINOGRAD_WEIGHT_MIN_CHANNELS`] and [`WINOGRAD_MIN_TILES`]).
fn winograd_pays_for_weights(g: &Conv2dGeometry) -> bool {
    g.group_in() >= WINOGRAD_WEIGHT_MIN_CHANNELS
        && g.group_out() >= WINOGRAD_WEIGHT_MIN_CHANNELS
        && winograd::tiles(g) >= WINOGRAD_MIN_TILES
}

/// Whether a 3x3 stride-1 layer has channels and tiles enough for Winograd's products to
/// outweigh its transforms (whose cost grows with the channels, not their product), for
/// weights used as `weights` says (the forward pass only: the input gradient's transposed
/// convolution runs on weights flipped anew on every call).
fn winograd_pays(g: &Conv2dGeometry, isa: Isa, weights: WeightUse) -> bool {
    let min_tiles = match (weights, isa) {
        (WeightUse::Prepared, Isa::Avx2Fma) => WINOGRAD_MIN_TILES_PREPARED_AVX2,
        _ => WINOGRAD_MIN_TILES,
    };
    g.group_in() >= WINOGRAD_MIN_CHANNELS
        && g.group_out() >= WINOGRAD_MIN_CHANNELS
        && winograd::tiles(g) >= min_tiles
}

/// The path that runs: `forced` where it serves `pass` of `g` on `isa`, else
/// [`plan_for`]'s for weights used as `weights` says.
pub fn choose(
    g: &Conv2dGeometry,
    isa: Isa,
    pass: Pass,
    weights: WeightUse,
    forced: Option<ConvPath>,
) -> ConvPath {
    match forced {
        Some(path) if path.serves(g, isa, pass) => path,
        _ => plan_for(g, isa, pass, weights),
    }
}

/// Parses a `VENTRAL_CONV` value: empty or `auto` is no forcing, a path's name forces it.
///
/// # Errors
/// [`KernelError::InvalidArgument`] naming the value and the accepted names if it is neither.
pub fn parse_forced(value: &str) -> Result<Option<ConvPath>> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    ConvPath::from_name(trimmed).map(Some).ok_or_else(|| {
        let names: Vec<&str> = ConvPath::ALL.iter().map(|p| p.name()).collect();
        KernelError::InvalidArgument {
            op: "conv2d",
            detail: format!(
                "VENTRAL_CONV={value:?} is not a convolution path (expected auto or one of {})",
                names.join(", ")
            ),
        }
    })
}

/// The path `VENTRAL_CONV` forces, read and parsed once per process.
///
/// # Errors
/// As [`parse_forced`], on every call, if the variable holds an unknown name.
pub fn forced_from_env() -> Result<Option<ConvPath>> {
    static FORCED: OnceLock<Result<Option<ConvPath>>> = OnceLock::new();
    FORCED
        .get_or_init(|| parse_forced(&std::env::var("VENTRAL_CONV").unwrap_or_default()))
        .clone()
}
