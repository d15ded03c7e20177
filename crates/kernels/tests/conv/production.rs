//! Convolutions at the geometry training runs: the layers of LeNet-5, ResNet-20, VGG and
//! AlexNet at a realistic batch, so every parallel branch and every several-images-per-segment
//! loop of the convolution paths runs under a test (the proptests' batches of at most 3 stay
//! below every parallel threshold). Each case runs every pass on every instruction-set path
//! against the f64 reference, on 1 and 2 threads, bit for bit (`reference::check_case`).
//!
//! Where each case goes, from the thresholds in `crates/kernels/src/conv` and `gemm`:
//! - a pass runs its parallel branch when `2 * macs >= PARALLEL_MIN_FLOPS = 2^23` (and, for
//!   the implicit GEMM, when there is more than one thread; with fewer (image, piece) units
//!   than threads it also cuts the weights' rows into blocks, as in ResNet-18's 7x7 layer at
//!   batch 1); `macs = batch * out_channels * out_h * out_w * in_channels / groups * kh * kw`;
//! - the weight gradient cuts the batch into `min(batch, 8)` segments of
//!   `ceil(batch / 8)` images (`WEIGHT_GRADIENT_SEGMENTS`), so batch 9 has 5 segments of 2, 2,
//!   2, 2 and 1 images and batch 64 has 8 segments of 8;
//! - the col2im input gradient cuts the batch into whole-image tiles of
//!   `COL_BUDGET / (in_channels / groups * kh * kw) / positions` images (2^18 floats of
//!   columns), run side by side, or into ranges of one image when one image does not fit.
//!
//! The paths are named as in the crate: `flat` (flat.rs), `direct` (direct.rs), `channels`
//! (channels.rs, AVX-512 only), `input_rows` (input_rows.rs, AVX-512 only), `implicit`
//! (the implicit GEMM in conv/mod.rs), `transposed` (the input gradient as the forward
//! convolution of dy with flipped weights), `col2im` (the input gradient through a column
//! buffer), `pointwise` (batched GEMMs), `small_images` (small_images.rs, batch-folded).
//! Each case asserts that the planner (`conv/plan.rs`) still picks those paths, so a changed
//! plan fails here by name instead of quietly moving a layer to another path.

use ventral_kernels::Isa;
use ventral_kernels::conv::ConvPath::{
    Channels, Col2im, Dense, Direct, Flat, Implicit, InputRows, Pointwise, SmallImages, Transposed,
    Winograd,
};
use ventral_kernels::conv::{COL_BUDGET, Conv2d, Conv2dGeometry, Conv2dParams, ConvPath, ConvPlan};
use ventral_kernels::gemm::PARALLEL_MIN_FLOPS;

use crate::common::isas;
use crate::reference::{Case, check_case};

/// The paths `[forward, input gradient, weight gradient]` a layer must be planned: on
/// AVX-512, and on AVX2 and portable.
#[derive(Debug, Clone, Copy)]
struct Plans {
    avx512: [ConvPath; 3],
    avx2: [ConvPath; 3],
    portable: [ConvPath; 3],
}

impl Plans {
    /// The same paths on every instruction set.
    const fn all(paths: [ConvPath; 3]) -> Plans {
        Plans {
            avx512: paths,
            avx2: paths,
            portable: paths,
        }
    }

    /// One plan on AVX-512, another on AVX2 and the portable path.
    const fn avx512_and_others(avx512: [ConvPath; 3], others: [ConvPath; 3]) -> Plans {
        Plans {
            avx512,
            avx2: others,
            portable: others,
        }
    }

    /// The expected plan on `isa`.
    fn on(&self, isa: Isa) -> ConvPlan {
        let [forward, input_gradient, weight_gradient] = match isa {
            Isa::Avx512 => self.avx512,
            Isa::Avx2Fma => self.avx2,
            Isa::Portable => self.portable,
        };
        ConvPlan {
            forward,
            input_gradient,
            weight_gradient,
        }
    }
}

/// Which side of the parallel threshold a layer's passes fall on: `2 * macs` against
/// `PARALLEL_MIN_FLOPS`, the test of the parallel branches of `direct.rs`, `channels.rs`,
/// `input_rows.rs` and the col2im input gradient (the implicit GEMM's has the same work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Below the threshold: every pass takes its serial branch.
    Serial,
    /// At or above it: the parallel branches run.
    Parallel,
}

/// Checks one layer: `input` `[N, C, H, W]`, `weight` `[O, C / groups, KH, KW]`, first that
/// it still falls on the `work` side of the threshold (so a changed threshold cannot quietly
/// turn a parallel case serial), that the planner picks `plans` on every instruction set, and,
/// for the col2im input gradient, that whole-image tiles hold `tile_images` images.
fn layer(
    input: [usize; 4],
    weight: [usize; 4],
    params: Conv2dParams,
    work: Work,
    tile_images: Option<usize>,
    plans: Plans,
    seed: u64,
) {
    let case = Case {
        input,
        weight,
        params,
        seed,
    };
    let g = Conv2dGeometry::new(input, weight, params).unwrap();
    let side = if 2 * g.macs() >= PARALLEL_MIN_FLOPS {
        Work::Parallel
    } else {
        Work::Serial
    };
    assert_eq!(side, work, "{case:?}: {} MACs", g.macs());
    for isa in isas() {
        let conv = Conv2d::new(input, weight, params)
            .unwrap()
            .with_isa(isa)
            .unwrap()
            .with_path(None);
        assert_eq!(
            conv.plan(),
            plans.on(isa),
            "{case:?} on {isa:?}: the planner's choice changed"
        );
    }
    if let Some(images) = tile_images {
        // `Conv2d::tiles`: COL_BUDGET floats of lowered columns, each as long as the lowered
        // rows of one group, whole images of out_h * out_w positions.
        let rows = g.in_channels / g.params.groups * g.kernel_h * g.kernel_w;
        assert_eq!(COL_BUDGET / rows / (g.out_h * g.out_w), images, "{case:?}");
    }
    check_case(&case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
}

/// LeNet-5's first layer, 1 -> 6 channels, 5x5, padding 2, over 28x28 images (output 28x28):
/// 117,600 MACs an image, so the parallel threshold (2^22 MACs) falls at 36 images.
const LENET_CONV1: ([usize; 3], [usize; 4], usize) = ([1, 28, 28], [6, 1, 5, 5], 2);

/// LeNet-5's second layer, 6 -> 16 channels, 5x5, no padding, over 14x14 maps (output
/// 10x10): 240,000 MACs an image, parallel from 18 images on.
const LENET_CONV2: ([usize; 3], [usize; 4], usize) = ([6, 14, 14], [16, 6, 5, 5], 0);

/// LeNet-5 conv1's plan on every instruction set.
const LENET_CONV1_PLAN: Plans = Plans::all([Flat, Col2im, Direct]);

/// LeNet-5 conv2's plan: the AVX-512 paths; on AVX2 flat rows read in place and the direct
/// weight gradient; on the portable path flat rows and GEMMs.
const LENET_CONV2_PLAN: Plans = Plans {
    avx512: [Channels, InputRows, Channels],
    avx2: [Flat, Col2im, Direct],
    portable: [Flat, Col2im, Implicit],
};

fn lenet(
    layer_: ([usize; 3], [usize; 4], usize),
    batch: usize,
    work: Work,
    tile_images: usize,
    plans: Plans,
    seed: u64,
) {
    let ([c, h, w], weight, padding) = layer_;
    layer(
        [batch, c, h, w],
        weight,
        Conv2dParams::default().padding(padding),
        work,
        Some(tile_images),
        plans,
        seed,
    );
}

#[test]
fn lenet5_conv1_at_batch_9() {
    // 1.06 M MACs: below the parallel threshold everywhere, so this is the serial side.
    // forward: flat (6 <= 16 output channels, out_w 28 < 32, padded 32 <= 1.5 x 28), serial.
    // dx: col2im (1 input channel < 4 rules out the transposed convolution, rows 28 > 16
    //   rule out input_rows): one whole-image tile of all 9 images (25 lowered rows, 10,485
    //   columns fit 13 images of 784 positions).
    // dw: direct (one input channel), 5 segments of 2, 2, 2, 2, 1 images, one after another.
    lenet(LENET_CONV1, 9, Work::Serial, 13, LENET_CONV1_PLAN, 11);
}

#[test]
fn lenet5_conv1_at_batch_64() {
    // 7.5 M MACs (15 MFLOP, above 2^23): the parallel branches.
    // forward: flat, 64 units of one image each (896 flat positions fit one piece) side by side.
    // dx: col2im, 5 whole-image tiles of 13, 13, 13, 13, 12 images side by side.
    // dw: direct, 8 segments of 8 images side by side (`into_par_iter` over segments).
    lenet(LENET_CONV1, 64, Work::Parallel, 13, LENET_CONV1_PLAN, 12);
}

#[test]
fn lenet5_conv2_at_batch_9() {
    // 2.16 M MACs: serial everywhere.
    // AVX-512: forward channels (16 output channels, flat geometry), serial loop over images;
    //   dx input_rows (rows 14 <= 16 wide, 6 <= 12 input channels), serial loop over images;
    //   dw channels (kernel 5 <= 8 wide), 5 segments of 2, 2, 2, 2, 1 images.
    // AVX2, portable: forward flat (read in place on AVX2, through the GEMM on the portable
    //   path); dx col2im (8 x 196 > 9 x 100 input positions rule out the transposed
    //   convolution), one tile of all 9 images (150 lowered rows, 1,747 columns fit 17
    //   images); dw on AVX2 direct (6 input and 16 output channels over 14-wide rows for 10
    //   outputs), portable implicit, 5 segments of 2, 2, 2, 2, 1 images.
    lenet(LENET_CONV2, 9, Work::Serial, 17, LENET_CONV2_PLAN, 21);
}

#[test]
fn lenet5_conv2_at_batch_64() {
    // 15.4 M MACs: the parallel branches.
    // AVX-512: forward channels and dx input_rows, images side by side (`par_chunks_mut`);
    //   dw channels, 8 segments of 8 images side by side.
    // AVX2, portable: forward flat, 64 units side by side; dx col2im, 4 tiles of 17, 17, 17,
    //   13 images side by side; dw (AVX2 direct, portable implicit) 8 segments of 8 images
    //   side by side.
    lenet(LENET_CONV2, 64, Work::Parallel, 17, LENET_CONV2_PLAN, 22);
}

#[test]
fn resnet20_stage1_16_to_16_at_32x32() {
    // 16 -> 16, 3x3, padding 1, 32x32, batch 16: 37.7 M MACs.
    // AVX-512: forward on flat rows read in place (16 output channels, padded rows 34 <=
    //   9/8 x 32), 4 units of 4 output channels per image side by side, 12 blocks of 96 flat
    //   positions each (1,088 of them).
    // AVX2: the same flat rows read in place, 4 units of 4 output channels per image, 68
    //   blocks of 16 flat positions.
    // Portable: forward implicit (32 > 31 columns: not flat), 2 pieces of 16 output rows per
    //   image (910 positions per 144-row-deep piece), 32 units side by side.
    // dx: transposed (16 >= 4 input channels, same-size input), the same product.
    // dw: on AVX-512 direct (16 channels in and out, flat rows of 34 for 32 outputs), 8
    //   segments of 2 images side by side, 6 blocks of 3, 3, 3, 3, 2, 2 output channels by
    //   all 9 taps per input channel; on AVX2 direct in 2 x 5 blocks; portable: Winograd
    //   (1,024 tiles of 4x4), 2 units of 512 tiles (64 rows of tiles), 2 segments side by
    //   side.
    layer(
        [16, 16, 32, 32],
        [16, 16, 3, 3],
        Conv2dParams::default().padding(1),
        Work::Parallel,
        None,
        Plans {
            avx512: [Flat, Transposed, Direct],
            avx2: [Flat, Transposed, Direct],
            portable: [Implicit, Transposed, Winograd],
        },
        31,
    );
}

#[test]
fn vgg11_cifar_first_layer_3_to_64() {
    // 3 -> 64, 3x3, padding 1, 32x32, batch 16 (VGG-11's first layer on CIFAR): 28.3 M MACs.
    // forward: implicit (27 taps: too few for the channel-vectorised path), 16 units.
    // dx: col2im (3 < 4 input channels), whole-image tiles of 9 and 7 images.
    // dw: on AVX-512 direct (3 input channels, 64 outputs in 22 blocks of 3, 3, ..., 2, 2,
    //   flat rows of 34), 8 segments of 2 images side by side; elsewhere implicit.
    layer(
        [16, 3, 32, 32],
        [64, 3, 3, 3],
        Conv2dParams::default().padding(1),
        Work::Parallel,
        Some(9),
        Plans::avx512_and_others([Implicit, Col2im, Direct], [Implicit, Col2im, Implicit]),
        34,
    );
}

#[test]
fn resnet20_downsampling_16_to_32_stride_2() {
    // 16 -> 32, 3x3, stride 2, padding 1, 32x32 -> 16x16, batch 16: 18.9 M MACs.
    // forward: on AVX-512 channels (strided 3x3, 144 lowered rows), 16 units of one image
    //   and 32 channels (2 registers, rows of 16 as runs of 8 and 8) side by
    //   side; elsewhere implicit over the column-phase-split window, 16 units.
    // dx: strided col2im, 3 whole-image tiles of 7, 7, 2 images side by side (144 lowered
    //   rows, 1,820 columns fit 7 images of 256 positions).
    // dw: implicit, 8 segments of 2 images side by side.
    layer(
        [16, 16, 32, 32],
        [32, 16, 3, 3],
        Conv2dParams::default().stride(2).padding(1),
        Work::Parallel,
        Some(7),
        Plans::avx512_and_others([Channels, Col2im, Implicit], [Implicit, Col2im, Implicit]),
        32,
    );
    // The 1x1 stride-2 projection shortcut (ResNet option B): 2.1 M MACs, serial; strided, so
    // not pointwise: implicit forward; dx col2im in one tile of all 16 images (16 lowered
    // rows); dw implicit, 8 segments of 2 images.
    layer(
        [16, 16, 32, 32],
        [32, 16, 1, 1],
        Conv2dParams::default().stride(2),
        Work::Serial,
        Some(64),
        Plans::all([Implicit, Col2im, Implicit]),
        33,
    );
}

#[test]
fn resnet20_stage2_32_to_32_at_16x16() {
    // 32 -> 32, 3x3, padding 1, 16x16, batch 16: 37.7 M MACs.
    // forward: Winograd (32 channels in and out; 32 output channels > 16: not flat), 4
    //   tiles of 4x4 a row of tiles, 64 rows of tiles, 8 rows per unit (at least 8 units).
    // dx: transposed (input_rows needs at most 12 input channels), itself by Winograd.
    // dw: Winograd, 8 units of 8 rows, 8 segments of one unit side by side.
    layer(
        [16, 32, 16, 16],
        [32, 32, 3, 3],
        Conv2dParams::default().padding(1),
        Work::Parallel,
        None,
        Plans::all([Winograd, Transposed, Winograd]),
        34,
    );
}

#[test]
fn resnet20_stage3_64_to_64_at_8x8() {
    // 64 -> 64, 3x3, padding 1, 8x8, batch 16: 37.7 M MACs.
    // forward: Winograd (64 positions per image >= 16: not batch-folded), 2 tiles a row of
    //   tiles, 4 rows per unit (at least 8 units): 8 units. dx: transposed, by Winograd.
    // dw: Winograd, 8 units, 8 segments of one unit side by side.
    layer(
        [16, 64, 8, 8],
        [64, 64, 3, 3],
        Conv2dParams::default().padding(1),
        Work::Parallel,
        None,
        Plans::all([Winograd, Transposed, Winograd]),
        35,
    );
}

#[test]
fn vgg16_64_to_64_at_56x56_one_image() {
    // 64 -> 64, 3x3, padding 1, 56x56, batch 1: 115.6 M MACs.
    // forward: Winograd, 14 tiles a row of tiles, 2 rows per unit: 7 units side by side.
    //   dx: transposed, likewise.
    // dw: Winograd, 7 units of 2 rows, 7 segments of one unit side by side.
    layer(
        [1, 64, 56, 56],
        [64, 64, 3, 3],
        Conv2dParams::default().padding(1),
        Work::Parallel,
        None,
        Plans::all([Winograd, Transposed, Winograd]),
        41,
    );
}

#[test]
fn resnet18_512_to_512_at_7x7_one_image() {
    // 512 -> 512, 3x3, padding 1, 7x7, batch 1 (ResNet-18's last stage in inference):
    // 115.6 M MACs. forward: implicit, not Winograd (4 tiles < 48: the weight transforms
    // would cost more than they save), one (image, piece) unit, so two threads split the
    // output channels. dx: transposed, likewise implicit. dw: implicit.
    layer(
        [1, 512, 7, 7],
        [512, 512, 3, 3],
        Conv2dParams::default().padding(1),
        Work::Parallel,
        None,
        Plans::all([Implicit, Transposed, Implicit]),
        43,
    );
}

#[test]
fn vgg16_128_to_128_at_28x28() {
    // 128 -> 128, 3x3, padding 1, 28x28, batch 2: 231 M MACs.
    // forward: Winograd, 7 tiles a row of tiles, 2 rows per unit (at least 8 units where
    //   there are 14 rows; a unit may span the two images): 7 units side by side.
    //   dx: transposed, by Winograd. dw: Winograd, 7 units of 2 rows, 7 segments.
    layer(
        [2, 128, 28, 28],
        [128, 128, 3, 3],
        Conv2dParams::default().padding(1),
        Work::Parallel,
        None,
        Plans::all([Winograd, Transposed, Winograd]),
        42,
    );
}

#[test]
fn vgg11_cifar_512_to_512_at_2x2() {
    // 512 -> 512, 3x3, padding 1, 2x2 maps, batch 16: 151 M MACs, dense (4 input pixels < 9
    // taps, batch 16 >= 8; D is 2,048 x 2,048 floats).
    // forward: one GEMM (16 x 2,048 x 2,048) against D^T read transposed, split by threads.
    // dx: one GEMM (16 x 2,048 x 2,048). dw: dD^T = dy^T x (2,048 x 16 x 2,048), then each
    //   kernel's taps summed over their 16 (pixel, position) pairs, kernels side by side.
    layer(
        [16, 512, 2, 2],
        [512, 512, 3, 3],
        Conv2dParams::default().padding(1),
        Work::Parallel,
        Some(14),
        Plans::all([Dense, Dense, Dense]),
        51,
    );
}

#[test]
fn small_images_weight_gradient_in_several_tiles() {
    // 64 -> 8, 3x3, padding 1, 3x3 maps (9 pixels: no fewer than the taps, so not dense),
    // batch 1,000: 41 M MACs. Forward and weight-gradient tiles hold 2^22 lowered floats,
    // 7,281 columns of 576 rows: 809 images of 9 positions, so the forward is 2 tiles side
    // by side and dw 2 segments (809 and 191 images) side by side, summed in order.
    layer(
        [1000, 64, 3, 3],
        [8, 64, 3, 3],
        Conv2dParams::default().padding(1),
        Work::Parallel,
        Some(50),
        Plans::all([SmallImages, Col2im, SmallImages]),
        53,
    );
}

#[test]
fn dense_at_batch_8_on_one_by_one_maps_with_stride_and_dilation() {
    // 24 -> 20, 3x3, stride 2, padding 2, dilation 2, 1x1 maps, batch 9: the one pixel is
    // under the centre tap only, so D is 24 x 20 with one kernel entry per pair; dw's other
    // eight taps are zero. 38,880 MACs as counted over all taps.
    layer(
        [9, 24, 1, 1],
        [20, 24, 3, 3],
        Conv2dParams::default().stride(2).padding(2).dilation(2),
        Work::Serial,
        None,
        Plans::all([Dense, Dense, Dense]),
        57,
    );
}

#[test]
fn alexnet_conv1_11x11_stride_4() {
    // 3 -> 64, 11x11, stride 4, padding 2, 224x224 -> 55x55, batch 2: 141 M MACs.
    // forward: on AVX-512 channels (3 input channels, 121 taps), 2 units of one image and 64
    //   channels side by side, each row of 55 positions in runs of 6, 6, 6, 6, 6, 5, 5, 5, 5,
    //   5; elsewhere implicit over strided windows.
    // dx: col2im over ranges of one image (363 lowered rows x 3,025 positions exceed the
    //   2^18-float budget: 5 tiles of 11 output rows), in order within an image, the 2 images
    //   side by side. dw: implicit, 2 segments of 1 image side by side.
    layer(
        [2, 3, 224, 224],
        [64, 3, 11, 11],
        Conv2dParams::default().stride(4).padding(2),
        Work::Parallel,
        Some(0),
        Plans::avx512_and_others([Channels, Col2im, Implicit], [Implicit, Col2im, Implicit]),
        61,
    );
}

#[test]
fn resnet_conv1_7x7_stride_2_one_image() {
    // 3 -> 64, 7x7, stride 2, padding 3, 224x224 -> 112x112, batch 1 (ResNet-18/50's first
    // layer in inference): 118 M MACs.
    // forward: on AVX-512 channels (3 input channels, 49 taps); one image is one unit of 64
    //   channels on 1 thread, two units of 32 channels (2 registers, runs of 12) on 2 threads;
    //   elsewhere implicit over strided windows.
    // dx: col2im over ranges of the image (147 lowered rows x 12,544 positions exceed the
    //   budget). dw: implicit, one segment.
    layer(
        [1, 3, 224, 224],
        [64, 3, 7, 7],
        Conv2dParams::default().stride(2).padding(3),
        Work::Parallel,
        Some(0),
        Plans::avx512_and_others([Channels, Col2im, Implicit], [Implicit, Col2im, Implicit]),
        62,
    );
}

#[test]
fn pointwise_1x1_128_to_128_at_28x28() {
    // 128 -> 128, 1x1, 28x28, batch 4 (a MobileNet pointwise layer): 51 M MACs, pointwise.
    // forward and dx: batched GEMMs, the 4 images side by side (batch >= 2 threads, 103
    //   MFLOP). dw: one GEMM per image (128 x 784 x 128, 25.7 MFLOP), threads splitting it.
    layer(
        [4, 128, 28, 28],
        [128, 128, 1, 1],
        Conv2dParams::default(),
        Work::Parallel,
        None,
        Plans::all([Pointwise, Pointwise, Pointwise]),
        71,
    );
}

#[test]
fn depthwise_3x3_32_channels_at_28x28() {
    // 32 -> 32 depthwise, 3x3, padding 1, 28x28, batch 32 (a MobileNet block): 7.2 M MACs.
    // forward: flat (1 output channel per group, out_w 28 < 32, padded 30 <= 1.5 x 28), one
    //   group at a time, each below the threshold: serial.
    // dx: col2im (one input channel per group), one tile of all 32 images.
    // dw: direct with 32 groups, 8 segments of 4 images side by side.
    layer(
        [32, 32, 28, 28],
        [32, 1, 3, 3],
        Conv2dParams::default().padding(1).groups(32),
        Work::Parallel,
        Some(37),
        Plans::all([Flat, Col2im, Direct]),
        81,
    );
}

#[test]
fn resnext_grouped_3x3_at_14x14() {
    // 128 -> 128 in 32 groups of 4 channels, 3x3, padding 1, 14x14, batch 8 (a ResNeXt-50
    // 32x4d block at CIFAR scale): 7.2 M MACs.
    // forward: flat (4 <= 16 output channels per group), one group at a time, each serial.
    // AVX-512: dx input_rows (rows 14 <= 16 wide, 4 <= 12 input channels per group), images
    //   side by side, 32 groups each. AVX2, portable: dx transposed (4 >= 4 input channels),
    //   flat again.
    // dw: AVX2 direct (4 channels in and out over 16-wide rows for 14 outputs); elsewhere
    //   implicit, per group; 8 segments of 1 image (each group below the threshold: serial).
    layer(
        [8, 128, 14, 14],
        [128, 4, 3, 3],
        Conv2dParams::default().padding(1).groups(32),
        Work::Parallel,
        None,
        Plans {
            avx512: [Flat, InputRows, Implicit],
            avx2: [Flat, Transposed, Direct],
            portable: [Flat, Transposed, Implicit],
        },
        91,
    );
}
