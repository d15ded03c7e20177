//! Convolution against a plain 7-nested-loop reference (and its two gradients), the adjoint
//! identity, tiling boundaries, both thread counts and every instruction-set path: random
//! geometries here, every const-generic instantiation of the special paths, and the layers
//! of real networks at training batch sizes in `production.rs`. Every case also runs with each
//! convolution path forced that serves it (`reference.rs`); `planner.rs` tests forcing itself.

mod common;
#[path = "conv/epilogue.rs"]
mod epilogue;
#[path = "conv/planner.rs"]
mod planner;
#[path = "conv/prepared.rs"]
mod prepared;
#[path = "conv/production.rs"]
mod production;
#[path = "conv/reference.rs"]
mod reference;
#[path = "conv/winograd.rs"]
mod winograd;

use proptest::prelude::*;
use ventral_kernels::KernelError;
use ventral_kernels::conv::{Conv2d, Conv2dParams};

use common::{IsaCoverage, isa_coverage, random_vec};
use reference::{Case, check_case};

/// Any convolution: up to 3 groups of up to 3 input channels, kernels up to 8 wide, strides,
/// padding and dilation up to 3, 3 and 2 (many of these geometries are invalid, and must be
/// errors).
fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=3,
        1usize..=3,
        1usize..=3,
        1usize..=4,
        (1usize..=12, 1usize..=12),
        (1usize..=8, 1usize..=8),
        (1usize..=3, 1usize..=3),
        (0usize..=3, 0usize..=3),
        (1usize..=2, 1usize..=2),
        any::<u64>(),
    )
        .prop_map(
            |(n, groups, cg, og, (h, w), (kh, kw), stride, padding, dilation, seed)| Case {
                input: [n, groups * cg, h, w],
                weight: [groups * og, cg, kh, kw],
                params: Conv2dParams {
                    stride,
                    padding,
                    dilation,
                    groups,
                },
                seed,
            },
        )
}

/// Geometries of the direct weight gradient: one input channel per group (a first layer, or
/// depthwise), stride 1, dilation 1, with odd sizes so dot products have scalar tails, and
/// kernels up to 8 wide (blocks of 5 taps and a shorter rest).
fn single_channel_case() -> impl Strategy<Value = Case> {
    (
        1usize..=3,
        1usize..=3,
        1usize..=4,
        (1usize..=19, 1usize..=19),
        (1usize..=8, 1usize..=8),
        (0usize..=3, 0usize..=3),
        any::<u64>(),
    )
        .prop_map(|(n, groups, og, (h, w), (kh, kw), padding, seed)| Case {
            input: [n, groups, h, w],
            weight: [groups * og, 1, kh, kw],
            params: Conv2dParams {
                padding,
                groups,
                ..Conv2dParams::default()
            },
            seed,
        })
}

/// Geometries of the channel-vectorised forward pass and weight gradient (AVX-512): 16
/// output channels per group, stride 1, dilation 1, up to 12 input channels per group,
/// kernels up to 8 wide (`channels.rs` keeps a kernel row of up to 8 taps in registers), rows
/// narrower than 32 (runs of 12 positions and a shorter rest) as planned, and up to 40 wide,
/// which only a forced `channels` path reaches.
fn sixteen_channel_case() -> impl Strategy<Value = Case> {
    (
        1usize..=2,
        1usize..=2,
        1usize..=12,
        (1usize..=9, 1usize..=40),
        (1usize..=8, 1usize..=8),
        (0usize..=3, 0usize..=3),
        any::<u64>(),
    )
        .prop_map(|(n, groups, cg, (h, w), (kh, kw), padding, seed)| Case {
            input: [n, groups * cg, h, w],
            weight: [groups * 16, cg, kh, kw],
            params: Conv2dParams {
                padding,
                groups,
                ..Conv2dParams::default()
            },
            seed,
        })
}

/// Geometries of the channel-vectorised forward pass at any stride (AVX-512,
/// `channels_forward.rs`): 16 to 80 output channels per group (blocks of 1 to 4 registers;
/// 80 is 5 blocks of one), up to 4 input channels per group, kernels up to 8 wide, strides up
/// to 4, rows of up to 30 (several runs per row). Planned on `channels` for kernels of 25 taps
/// or more, forced for the rest.
fn channel_block_case() -> impl Strategy<Value = Case> {
    (
        1usize..=2,
        1usize..=2,
        1usize..=4,
        1usize..=5,
        (1usize..=14, 1usize..=30),
        (1usize..=8, 1usize..=8),
        (1usize..=4, 1usize..=4),
        (0usize..=3, 0usize..=3),
        any::<u64>(),
    )
        .prop_map(
            |(n, groups, cg, vectors, (h, w), (kh, kw), stride, padding, seed)| Case {
                input: [n, groups * cg, h, w],
                weight: [groups * 16 * vectors, cg, kh, kw],
                params: Conv2dParams {
                    stride,
                    padding,
                    groups,
                    ..Conv2dParams::default()
                },
                seed,
            },
        )
}

/// Geometries of the row-vectorised input gradient (AVX-512, `input_rows.rs`): stride 1,
/// dilation 1, input rows at most 16 wide, up to 12 input channels per group (one register
/// per channel), kernels up to 8 wide, padding up to 3.
fn narrow_row_case() -> impl Strategy<Value = Case> {
    (
        1usize..=2,
        1usize..=2,
        1usize..=12,
        1usize..=4,
        (1usize..=10, 1usize..=16),
        (1usize..=8, 1usize..=8),
        (0usize..=3, 0usize..=3),
        any::<u64>(),
    )
        .prop_map(
            |(n, groups, cg, og, (h, w), (kh, kw), padding, seed)| Case {
                input: [n, groups * cg, h, w],
                weight: [groups * og, cg, kh, kw],
                params: Conv2dParams {
                    padding,
                    groups,
                    ..Conv2dParams::default()
                },
                seed,
            },
        )
}

/// Pointwise geometries (1x1, stride 1, no padding), which `case` rarely draws: the batched
/// GEMM path, with groups, and every path a forced 1x1 kernel can take instead.
fn pointwise_case() -> impl Strategy<Value = Case> {
    (
        1usize..=3,
        1usize..=3,
        1usize..=5,
        1usize..=5,
        (1usize..=9, 1usize..=9),
        any::<u64>(),
    )
        .prop_map(|(n, groups, cg, og, (h, w), seed)| Case {
            input: [n, groups * cg, h, w],
            weight: [groups * og, cg, 1, 1],
            params: Conv2dParams::default().groups(groups),
            seed,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn pointwise_convs_match_the_reference(case in pointwise_case()) {
        check_case(&case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sixteen_output_channel_convs_match_the_reference(case in sixteen_channel_case()) {
        check_case(&case)?;
    }

    #[test]
    fn channel_block_convs_match_the_reference(case in channel_block_case()) {
        check_case(&case)?;
    }

    #[test]
    fn conv_matches_the_nested_loop_reference(case in case()) {
        check_case(&case)?;
    }

    #[test]
    fn single_input_channel_convs_match_the_reference(case in single_channel_case()) {
        check_case(&case)?;
    }

    #[test]
    fn narrow_row_convs_match_the_reference(case in narrow_row_case()) {
        check_case(&case)?;
    }

    #[test]
    fn backward_input_is_the_adjoint_of_forward(case in case()) {
        // <conv(x), y> == <x, conv_backward_input(y)> for the bias-free convolution: the input
        // gradient is the transpose of the linear map x -> conv(x).
        let Ok(conv) = Conv2d::new(case.input, case.weight, case.params) else { return Ok(()) };
        let g = *conv.geometry();
        let len = |s: [usize; 4]| s.iter().product::<usize>();
        let x = random_vec(len(g.input_shape()), -1.0, 1.0, case.seed);
        let w = random_vec(len(g.weight_shape()), -1.0, 1.0, case.seed ^ 5);
        let y = random_vec(len(g.output_shape()), -1.0, 1.0, case.seed ^ 6);
        let mut cx = vec![0.0; y.len()];
        let mut cty = vec![0.0; x.len()];
        conv.forward(&x, &w, None, &mut cx).unwrap();
        conv.backward_input(&y, &w, &mut cty).unwrap();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
        let mag = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (*p as f64 * *q as f64).abs()).sum::<f64>();
        let (lhs, rhs) = (dot(&cx, &y), dot(&x, &cty));
        prop_assert!((lhs - rhs).abs() <= 1e-5 * (1.0 + mag(&cx, &y) + mag(&x, &cty)), "{} vs {}", lhs, rhs);
    }
}

#[test]
fn fixed_layers_including_tiled_and_pointwise() {
    let cases = [
        // 1x1 image, 1x1 kernel.
        ([2, 3, 1, 1], [4, 3, 1, 1], Conv2dParams::default()),
        // Pointwise with groups.
        (
            [2, 4, 5, 7],
            [6, 2, 1, 1],
            Conv2dParams::default().groups(2),
        ),
        // Depthwise 3x3.
        (
            [2, 4, 9, 9],
            [4, 1, 3, 3],
            Conv2dParams::default().groups(4).padding(1),
        ),
        // Small images, many of them: 72 rows x 144 positions per image, 25 images to a tile,
        // so two whole-image tiles that run side by side (and a summed weight gradient).
        (
            [40, 8, 12, 12],
            [4, 8, 3, 3],
            Conv2dParams::default().padding(1),
        ),
        // Large enough that one image spans two im2col tiles: 16 * 9 rows x 10000 positions.
        (
            [2, 16, 100, 100],
            [4, 16, 3, 3],
            Conv2dParams::default().padding(1),
        ),
        // Rows wider than an implicit-GEMM piece (600 > 512 positions) and a reduction of
        // 29 * 9 = 261 lowered rows, cut into two blocks.
        (
            [1, 29, 3, 600],
            [3, 29, 3, 3],
            Conv2dParams::default().padding(1),
        ),
        // Output rows (30000) wider than any piece, tile or block, with a column stride: the
        // lowering, its transpose and col2im of ranges inside a row.
        (
            [1, 1, 3, 90000],
            [2, 1, 3, 3],
            Conv2dParams {
                stride: (1, 3),
                padding: (1, 1),
                ..Conv2dParams::default()
            },
        ),
        // Images smaller than a micro-panel (2x2 outputs): batch-folded im2col tiles of 14
        // images (4608 lowered rows), two tiles side by side, weight gradient in two segments.
        (
            [24, 512, 2, 2],
            [4, 512, 3, 3],
            Conv2dParams::default().padding(1),
        ),
        // LeNet-5's first layer: one input channel, 28x28 padded to 32x32, through the direct
        // weight gradient over three images.
        (
            [3, 1, 28, 28],
            [6, 1, 5, 5],
            Conv2dParams::default().padding(2),
        ),
        // LeNet-5's second layer: 16 output channels over 10-wide rows, through the flat
        // forward pass (rows computed 14 wide, the 4 extra columns dropped).
        ([2, 6, 14, 14], [16, 6, 5, 5], Conv2dParams::default()),
        // A tall, narrow image whose flat rows (700 x 22 positions) need two packed pieces.
        (
            [1, 2, 700, 20],
            [3, 2, 3, 3],
            Conv2dParams::default().padding(1),
        ),
        // AlexNet-style 11x11 stride 4.
        (
            [1, 3, 35, 35],
            [2, 3, 11, 11],
            Conv2dParams::default().stride(4).padding(2),
        ),
        // Strided 1x1 (not pointwise: it subsamples).
        (
            [1, 3, 8, 8],
            [2, 3, 1, 1],
            Conv2dParams::default().stride(2),
        ),
    ];
    for (i, (input, weight, params)) in cases.into_iter().enumerate() {
        check_case(&Case {
            input,
            weight,
            params,
            seed: i as u64,
        })
        .unwrap();
    }
}

#[test]
fn kernel_larger_than_padded_input_is_an_error() {
    let err = Conv2d::new(
        [1, 1, 4, 4],
        [1, 1, 7, 7],
        Conv2dParams::default().padding(1),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("larger than the padded input"),
        "{err}"
    );
}

/// Asserts that `result` is a [`KernelError::ShapeMismatch`] of conv2d naming `what`.
fn assert_shape_mismatch(result: Result<(), KernelError>, what: &str) {
    match result {
        Err(KernelError::ShapeMismatch { op, detail }) => {
            assert_eq!(op, "conv2d");
            assert!(detail.starts_with(what), "{detail}");
        }
        other => panic!("{what}: expected a conv2d ShapeMismatch, got {other:?}"),
    }
}

#[test]
fn wrong_buffer_lengths_are_errors() {
    let conv = Conv2d::new([1, 1, 4, 4], [1, 1, 3, 3], Conv2dParams::default()).unwrap();
    let (x, w) = ([0.0; 16], [0.0; 9]);
    let (mut y, mut dx, mut dw, mut db) = ([0.0; 4], [0.0; 16], [0.0; 9], [0.0; 1]);
    assert_shape_mismatch(
        conv.forward(&x[..15], &w, None, &mut y),
        "input of shape [1, 1, 4, 4] needs 16 elements, got 15",
    );
    assert_shape_mismatch(
        conv.forward(&x, &w, Some(&[0.0, 0.0]), &mut y),
        "bias of shape [1, 1, 1, 1] needs 1 elements, got 2",
    );
    assert_shape_mismatch(conv.forward(&x, &w[..8], None, &mut y), "weight of shape");
    assert_shape_mismatch(conv.forward(&x, &w, None, &mut y[..3]), "output of shape");
    assert_shape_mismatch(
        conv.backward_input(&y[..3], &w, &mut dx),
        "output gradient of shape",
    );
    assert_shape_mismatch(
        conv.backward_input(&y, &w, &mut dx[..15]),
        "input gradient of shape",
    );
    assert_shape_mismatch(
        conv.backward_weight(&x, &y, &mut dw[..8]),
        "weight gradient of shape",
    );
    assert_shape_mismatch(
        conv.backward_bias(&y, &mut [0.0; 2]),
        "bias gradient of shape",
    );
    conv.forward(&x, &w, None, &mut y).unwrap();
    conv.backward_bias(&y, &mut db).unwrap();
}

#[test]
fn geometry_errors_name_their_variant() {
    let p = Conv2dParams::default();
    let invalid = |input, weight, params, needle: &str| match Conv2d::new(input, weight, params) {
        Err(KernelError::InvalidArgument {
            op: "conv2d",
            detail,
        }) => {
            assert!(detail.contains(needle), "{detail}")
        }
        other => panic!("{input:?} {weight:?}: expected InvalidArgument, got {other:?}"),
    };
    invalid(
        [1, 1, 4, 4],
        [1, 1, 3, 3],
        p.stride(0),
        "must be at least 1",
    );
    invalid(
        [1, 1, 4, 4],
        [1, 1, 3, 3],
        p.dilation(2),
        "larger than the padded input 4",
    );
    invalid(
        [1, 4, 4, 4],
        [6, 2, 3, 3],
        p.groups(3),
        "3 groups must divide",
    );
    invalid([1, 0, 4, 4], [1, 0, 3, 3], p, "empty weight");
    match Conv2d::new([1, 4, 4, 4], [6, 3, 3, 3], p.groups(2)) {
        Err(KernelError::ShapeMismatch {
            op: "conv2d",
            detail,
        }) => {
            assert!(detail.contains("needs weight [6, 2, kh, kw]"), "{detail}")
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

/// Every const-generic instantiation of the AVX-512 paths and of the direct weight gradient,
/// each at least once (the proptests reach them only with some probability):
/// `channels.rs` kernel rows of 1..=8 taps, `channels_forward.rs` blocks of 1..=4 registers
/// of channels by every run of positions they hold (1..=12, 1..=12, 1..=8, 1..=6),
/// `flat_direct.rs` blocks of 1..=4 and 8 output channels, `input_rows.rs` 1..=12 input channels,
/// `direct.rs` blocks of 1..=2 outputs by 1..=5 taps (AVX2) and 1..=3 by 1..=9 (AVX-512).
#[test]
fn every_const_generic_instantiation_runs() {
    let mut cases = Vec::new();
    // channels.rs (weight gradient) and channels_forward.rs as planned: 16 outputs, kernel
    // rows of 1..=8 taps; out_w in 12..=23 gives one run of 12 or two even runs of 6..=12
    // (the flat-row condition 2 (out_w + kw - 1) <= 3 out_w holds for kw <= 7 at out_w 12,
    // and out_w >= 14 for kw = 8).
    for kw in 1..=8 {
        for out_w in 12..=23 {
            if 2 * (out_w + kw - 1) > 3 * out_w {
                continue;
            }
            cases.push(([1, 2, 4, out_w + kw - 1], [16, 2, 2, kw], (0, 0), 1));
        }
    }
    // channels_forward.rs: 16 * vectors outputs (one unit of all of them: these cases stay
    // serial), rows of out_w <= the run a block holds are one run of out_w; stride 2 (so
    // planned on implicit, and checked with channels forced).
    for (vectors, most) in [(1, 12), (2, 12), (3, 8), (4, 6)] {
        for out_w in 1..=most {
            cases.push(([1, 2, 3, 2 * out_w + 1], [16 * vectors, 2, 3, 3], (0, 0), 2));
        }
    }
    // flat_direct.rs: blocks of 1..=4 output channels (as many as there are) and of 8 (on
    // AVX-512, 8 and 16 outputs), rows of 9 and 21 (a masked tail of 9 and 5 columns when
    // kept on AVX-512; on AVX2 a last 1 and 5 columns copied one by one).
    for outs in [1, 2, 3, 4, 8, 16] {
        cases.push(([1, 2, 6, 9], [outs, 2, 3, 3], (1, 1), 1));
        cases.push(([2, 1, 5, 21], [outs, 1, 3, 3], (1, 1), 1));
    }
    // input_rows.rs: c input channels, rows of 9..=16, kernels 1..=8 wide.
    for c in 1..=12 {
        let kw = 1 + (c - 1) % 8;
        cases.push(([2, c, 6, 9 + c % 8], [3, c, 3, kw], (1, kw / 2), 1));
    }
    // direct.rs: 1..=3 outputs (AVX2 blocks of 1..=2, AVX-512 of 1..=3), one kernel row of
    // 1..=9 taps (AVX2 blocks of 5 and a rest of 1..=4, AVX-512 blocks of all 1..=9), and
    // three rows of 1..=8 (blocks crossing kernel rows).
    for kw in 1..=9 {
        for outs in 1..=3 {
            cases.push(([2, 1, 9, 11], [outs, 1, 1, kw], (0, kw / 2), 1));
            if kw <= 8 {
                cases.push(([2, 1, 9, 11], [outs, 1, 3, kw], (1, kw / 2), 1));
            }
        }
    }
    for (i, (input, weight, padding, stride)) in cases.into_iter().enumerate() {
        let case = Case {
            input,
            weight,
            params: Conv2dParams {
                padding,
                stride: (stride, stride),
                ..Conv2dParams::default()
            },
            seed: 1000 + i as u64,
        };
        check_case(&case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    }
}

#[test]
fn required_isas_the_cpu_lacks_fail_and_others_are_skipped() {
    use ventral_kernels::Isa;
    let no_avx512 = |isa: Isa| isa != Isa::Avx512;
    // Nothing required: the missing path is skipped, the others run, best first.
    assert_eq!(
        isa_coverage("", no_avx512),
        Ok(IsaCoverage {
            run: vec![Isa::Avx2Fma, Isa::Portable],
            skipped: vec![Isa::Avx512],
        })
    );
    assert_eq!(
        isa_coverage(" avx2 ,portable", no_avx512).unwrap().skipped,
        [Isa::Avx512]
    );
    // Requiring the missing path is an error that names it.
    let err = isa_coverage("avx512,avx2", no_avx512).unwrap_err();
    assert!(
        err.contains("requires the avx512 path") && err.contains("lacks"),
        "{err}"
    );
    // A misspelt name is an error too, not a requirement silently dropped.
    let err = isa_coverage("avx-512", |_| true).unwrap_err();
    assert!(err.contains("unknown instruction set \"avx-512\""), "{err}");
}
