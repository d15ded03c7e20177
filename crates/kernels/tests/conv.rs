//! Convolution against a plain 7-nested-loop reference (and its two gradients), the adjoint
//! identity, tiling boundaries, both thread counts and every instruction-set path.

use std::sync::OnceLock;

use proptest::prelude::*;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use ventral_kernels::Isa;
use ventral_kernels::conv::{Conv2d, Conv2dGeometry, Conv2dParams};

fn pool(threads: usize) -> &'static rayon::ThreadPool {
    static POOLS: OnceLock<[rayon::ThreadPool; 2]> = OnceLock::new();
    let pools = POOLS.get_or_init(|| {
        [1, 2].map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("thread pool")
        })
    });
    &pools[threads - 1]
}

fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The input pixel that output `(oh, ow)` meets through tap `(ki, kj)`, if not padding.
fn tap(g: &Conv2dGeometry, oh: usize, ow: usize, ki: usize, kj: usize) -> Option<(usize, usize)> {
    let p = g.params;
    let ih = (oh * p.stride.0 + ki * p.dilation.0) as isize - p.padding.0 as isize;
    let iw = (ow * p.stride.1 + kj * p.dilation.1) as isize - p.padding.1 as isize;
    ((0..g.in_h as isize).contains(&ih) && (0..g.in_w as isize).contains(&iw))
        .then_some((ih as usize, iw as usize))
}

/// Calls `f(x_index, w_index, y_index)` for every multiply-accumulate of the convolution, in
/// the order of the seven nested loops of its definition.
fn for_each_mac(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let (gi, go) = (
        g.in_channels / g.params.groups,
        g.out_channels / g.params.groups,
    );
    for n in 0..g.batch {
        for o in 0..g.out_channels {
            let group = o / go;
            for oh in 0..g.out_h {
                for ow in 0..g.out_w {
                    let y_i = ((n * g.out_channels + o) * g.out_h + oh) * g.out_w + ow;
                    for c in 0..gi {
                        for ki in 0..g.kernel_h {
                            for kj in 0..g.kernel_w {
                                if let Some((ih, iw)) = tap(g, oh, ow, ki, kj) {
                                    let x_i = ((n * g.in_channels + group * gi + c) * g.in_h + ih)
                                        * g.in_w
                                        + iw;
                                    let w_i = ((o * gi + c) * g.kernel_h + ki) * g.kernel_w + kj;
                                    f(x_i, w_i, y_i);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Reference forward, input gradient and weight gradient in f64, with the magnitude sums that
/// bound f32 rounding error for each output.
struct Reference {
    y: Vec<(f64, f64)>,
    dx: Vec<(f64, f64)>,
    dw: Vec<(f64, f64)>,
}

fn reference(g: &Conv2dGeometry, x: &[f32], w: &[f32], bias: &[f32], dy: &[f32]) -> Reference {
    let len = |s: [usize; 4]| s.iter().product::<usize>();
    let mut y: Vec<(f64, f64)> = (0..len(g.output_shape()))
        .map(|i| {
            let b = bias[(i / (g.out_h * g.out_w)) % g.out_channels] as f64;
            (b, b.abs())
        })
        .collect();
    let mut dx = vec![(0.0, 0.0); len(g.input_shape())];
    let mut dw = vec![(0.0, 0.0); len(g.weight_shape())];
    for_each_mac(g, |xi, wi, yi| {
        let (xv, wv, dyv) = (x[xi] as f64, w[wi] as f64, dy[yi] as f64);
        y[yi].0 += xv * wv;
        y[yi].1 += (xv * wv).abs();
        dx[xi].0 += dyv * wv;
        dx[xi].1 += (dyv * wv).abs();
        dw[wi].0 += dyv * xv;
        dw[wi].1 += (dyv * xv).abs();
    });
    Reference { y, dx, dw }
}

fn assert_close(
    what: &str,
    got: &[f32],
    want: &[(f64, f64)],
    terms: usize,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    let eps = f32::EPSILON as f64 * (terms as f64 + 8.0);
    for (i, (&g, &(w, scale))) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (g as f64 - w).abs() <= eps * scale + 1e-30,
            "{}[{}] = {}, want {} (scale {})",
            what,
            i,
            g,
            w,
            scale
        );
    }
    Ok(())
}

/// Runs forward and both gradients and returns `(y, dx, dw, db)`.
fn run(conv: &Conv2d, x: &[f32], w: &[f32], bias: &[f32], dy: &[f32]) -> [Vec<f32>; 4] {
    let g = conv.geometry();
    let len = |s: [usize; 4]| s.iter().product::<usize>();
    let mut y = vec![f32::NAN; len(g.output_shape())];
    let mut dx = vec![f32::NAN; len(g.input_shape())];
    let mut dw = vec![f32::NAN; len(g.weight_shape())];
    let mut db = vec![f32::NAN; g.out_channels];
    conv.forward(x, w, Some(bias), &mut y).unwrap();
    conv.backward_input(dy, w, &mut dx).unwrap();
    conv.backward_weight(x, dy, &mut dw).unwrap();
    conv.backward_bias(dy, &mut db).unwrap();
    [y, dx, dw, db]
}

#[derive(Debug, Clone)]
struct Case {
    input: [usize; 4],
    weight: [usize; 4],
    params: Conv2dParams,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=3,
        1usize..=3,
        1usize..=3,
        1usize..=4,
        (1usize..=12, 1usize..=12),
        (1usize..=5, 1usize..=5),
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

fn check_case(case: &Case) -> Result<(), TestCaseError> {
    let Ok(geometry) = Conv2dGeometry::new(case.input, case.weight, case.params) else {
        // Invalid geometry (kernel larger than the padded input): must be an error, not a panic.
        prop_assert!(Conv2d::new(case.input, case.weight, case.params).is_err());
        return Ok(());
    };
    let len = |s: [usize; 4]| s.iter().product::<usize>();
    let x = random_vec(len(geometry.input_shape()), case.seed);
    let w = random_vec(len(geometry.weight_shape()), case.seed ^ 1);
    let bias = random_vec(geometry.out_channels, case.seed ^ 2);
    let dy = random_vec(len(geometry.output_shape()), case.seed ^ 3);
    let want = reference(&geometry, &x, &w, &bias, &dy);
    let k = geometry.in_channels / geometry.params.groups * geometry.kernel_h * geometry.kernel_w;
    for isa in Isa::available() {
        let conv = Conv2d::new(case.input, case.weight, case.params)
            .unwrap()
            .with_isa(isa)
            .unwrap();
        let [y1, dx1, dw1, db1] = pool(1).install(|| run(&conv, &x, &w, &bias, &dy));
        assert_close("y", &y1, &want.y, k)?;
        assert_close(
            "dx",
            &dx1,
            &want.dx,
            geometry.out_channels * geometry.kernel_h * geometry.kernel_w,
        )?;
        assert_close(
            "dw",
            &dw1,
            &want.dw,
            geometry.batch * geometry.out_h * geometry.out_w,
        )?;
        for (o, &got) in db1.iter().enumerate() {
            let plane = geometry.out_h * geometry.out_w;
            let want: f64 = (0..geometry.batch)
                .flat_map(|n| &dy[(n * geometry.out_channels + o) * plane..][..plane])
                .map(|&v| v as f64)
                .sum();
            prop_assert!(
                (got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "db[{}]",
                o
            );
        }
        // Bit-identical with two threads.
        let two = pool(2).install(|| run(&conv, &x, &w, &bias, &dy));
        for (a, b) in [y1, dx1, dw1, db1].iter().zip(&two) {
            prop_assert!(
                a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{:?}: 1 vs 2 threads",
                isa
            );
        }
    }
    Ok(())
}

/// Geometries of the direct weight gradient: one input channel per group (a first layer, or
/// depthwise), stride 1, dilation 1, with odd sizes so dot products have scalar tails.
fn single_channel_case() -> impl Strategy<Value = Case> {
    (
        1usize..=3,
        1usize..=3,
        1usize..=4,
        (1usize..=19, 1usize..=19),
        (1usize..=5, 1usize..=5),
        (0usize..=2, 0usize..=2),
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

/// Geometries of the channel-vectorised forward pass (AVX-512): 16 output channels per group,
/// stride 1, dilation 1, rows narrower than 32 (runs of 12 positions and a shorter rest).
fn sixteen_channel_case() -> impl Strategy<Value = Case> {
    (
        1usize..=2,
        1usize..=2,
        1usize..=4,
        (1usize..=9, 1usize..=27),
        (1usize..=5, 1usize..=5),
        (0usize..=2, 0usize..=2),
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sixteen_output_channel_convs_match_the_reference(case in sixteen_channel_case()) {
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
    fn backward_input_is_the_adjoint_of_forward(case in case()) {
        // <conv(x), y> == <x, conv_backward_input(y)> for the bias-free convolution: the input
        // gradient is the transpose of the linear map x -> conv(x).
        let Ok(conv) = Conv2d::new(case.input, case.weight, case.params) else { return Ok(()) };
        let g = *conv.geometry();
        let len = |s: [usize; 4]| s.iter().product::<usize>();
        let x = random_vec(len(g.input_shape()), case.seed);
        let w = random_vec(len(g.weight_shape()), case.seed ^ 5);
        let y = random_vec(len(g.output_shape()), case.seed ^ 6);
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

#[test]
fn wrong_buffer_lengths_are_errors() {
    let conv = Conv2d::new([1, 1, 4, 4], [1, 1, 3, 3], Conv2dParams::default()).unwrap();
    let mut y = vec![0.0; 4];
    assert!(conv.forward(&[0.0; 15], &[0.0; 9], None, &mut y).is_err());
    assert!(
        conv.forward(&[0.0; 16], &[0.0; 9], Some(&[0.0, 0.0]), &mut y)
            .is_err()
    );
    assert!(conv.forward(&[0.0; 16], &[0.0; 9], None, &mut y).is_ok());
}
