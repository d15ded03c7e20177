//! Pooling against plain f64 reference implementations written directly from PyTorch's
//! documented semantics, over random shapes and configurations; backward passes against a
//! reference backward and against central differences of the f64 reference forward; a few
//! hand-derived cases; invalid configurations; 1 vs 2 threads bit-identical.

#[path = "../common/mod.rs"]
mod common;
mod reference;

use proptest::prelude::*;
use ventral_kernels::pool::{
    AvgPool2dParams, MaxPool2dParams, adaptive_avg_pool2d, adaptive_avg_pool2d_backward,
    adaptive_output_shape, avg_pool2d, avg_pool2d_backward, global_avg_pool2d,
    global_avg_pool2d_backward, max_pool2d, max_pool2d_backward, max_pool2d_backward_into,
    max_pool2d_into, max_pool2d_values, max_pool2d_values_into,
};

use common::assert_error;
use reference::*;
// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Max pooling forward (values and indices) and backward against the references; an
    /// invalid configuration must be an error exactly where the reference says PyTorch raises.
    #[test]
    fn max_pool_matches_reference(cfg in cfg(side()), seed in any::<u64>()) {
        let numel: usize = cfg.shape.iter().product();
        let x = distinct_vec(numel, seed);
        let params = cfg.max_params();
        let Some(out_shape) = ref_shape(&cfg) else {
            prop_assert!(is_shape_error(max_pool2d(&x, cfg.shape, &params), "max_pool2d"));
            assert_error(params.output_shape(cfg.shape), "ShapeMismatch", "max_pool2d: ");
            return Ok(());
        };
        let got = max_pool2d(&x, cfg.shape, &params).unwrap();
        prop_assert_eq!(got.shape, out_shape);
        let (want_y, want_idx) = ref_max(&to_f64(&x), &cfg);
        assert_close(&got.y, &want_y, 0.0, 0.0, "max_pool2d y");
        prop_assert_eq!(&got.indices, &want_idx);

        let dy = random_vec(got.y.len(), seed ^ 1);
        let dx = max_pool2d_backward(&dy, &got.indices, cfg.shape, &params).unwrap();
        let want_dx = ref_max_backward(&to_f64(&dy), &want_idx, &cfg);
        assert_close(&dx, &want_dx, 1e-6, 1e-6, "max_pool2d_backward");

        // Many ties (values in {0, 1, 2}): the first tap in row-major window order wins.
        let tied: Vec<f32> = random_vec(numel, seed ^ 5).iter().map(|v| (v * 1.5 + 1.5).floor()).collect();
        let got = max_pool2d(&tied, cfg.shape, &params).unwrap();
        let (want_y, want_idx) = ref_max(&to_f64(&tied), &cfg);
        assert_close(&got.y, &want_y, 0.0, 0.0, "max_pool2d y with ties");
        prop_assert_eq!(&got.indices, &want_idx);
    }

    /// The 2x2, stride-2 windows of LeNet-5 and VGG (a separate fast path) against the
    /// reference: odd sides (a dropped last row or column, or in ceil mode a window hanging
    /// off the edge), ties and -inf. (The reference does not model NaN; see
    /// `max_pool_2x2_nan_follows_pytorch`.)
    #[test]
    fn max_pool_2x2_stride_2_matches_reference(
        (n, c, h, w) in (1usize..=2, 1usize..=3, side(), side()),
        ceil_mode in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let cfg = Cfg {
            shape: [n, c, h, w],
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode,
            count_include_pad: true,
        };
        let Some(_) = ref_shape(&cfg) else { return Ok(()) };
        let numel: usize = cfg.shape.iter().product();
        // Values in {-inf, 0, 1, 2}: ties everywhere, and whole -inf windows.
        let ties: Vec<f32> = random_vec(numel, seed)
            .iter()
            .map(|v| match ((v + 1.0) * 2.0).floor() as i32 {
                0 => f32::NEG_INFINITY,
                k => (k - 1) as f32,
            })
            .collect();
        for x in [distinct_vec(numel, seed ^ 3), ties] {
            let got = max_pool2d(&x, cfg.shape, &cfg.max_params()).unwrap();
            let (want_y, want_idx) = ref_max(&to_f64(&x), &cfg);
            prop_assert_eq!(&got.indices, &want_idx);
            assert_close(&got.y, &want_y, 0.0, 0.0, "2x2 max_pool2d y");
        }
    }

    /// The values-only max pool (inference) is bit-identical to the indexed one's values on
    /// every configuration: distinct values, and values from {-inf, -0, +0, 1, NaN, -NaN}
    /// where ties, signed zeros and several NaNs in a window decide which element is reported.
    #[test]
    fn max_pool_values_match_indexed(cfg in cfg(side()), seed in any::<u64>()) {
        let numel: usize = cfg.shape.iter().product();
        let params = cfg.max_params();
        let Some(out_shape) = ref_shape(&cfg) else {
            prop_assert!(is_shape_error(max_pool2d_values(&vec![0.0; numel], cfg.shape, &params), "max_pool2d"));
            return Ok(());
        };
        let special = [f32::NEG_INFINITY, -0.0, 0.0, 1.0, f32::NAN, -f32::NAN];
        let mixed: Vec<f32> = random_vec(numel, seed ^ 7)
            .iter()
            .map(|v| special[(((v + 1.0) * 3.0) as usize).min(5)])
            .collect();
        for x in [distinct_vec(numel, seed), mixed] {
            let want = max_pool2d(&x, cfg.shape, &params).unwrap();
            let got = max_pool2d_values(&x, cfg.shape, &params).unwrap();
            prop_assert_eq!(got.shape, out_shape);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&got.y), bits(&want.y));
            let mut into = vec![7.0; got.y.len()];
            max_pool2d_values_into(&x, cfg.shape, &params, &mut into).unwrap();
            prop_assert_eq!(bits(&into), bits(&want.y));
        }
    }

    /// Average pooling forward and backward against the references, both divisor rules.
    #[test]
    fn avg_pool_matches_reference(cfg in cfg(side()), seed in any::<u64>()) {
        let cfg = cfg.undilated();
        let numel: usize = cfg.shape.iter().product();
        let x = random_vec(numel, seed);
        let params = cfg.avg_params();
        let Some(out_shape) = ref_shape(&cfg) else {
            prop_assert!(is_shape_error(avg_pool2d(&x, cfg.shape, &params), "avg_pool2d"));
            return Ok(());
        };
        let got = avg_pool2d(&x, cfg.shape, &params).unwrap();
        prop_assert_eq!(got.shape, out_shape);
        assert_close(&got.y, &ref_avg(&to_f64(&x), &cfg), 1e-6, 1e-5, "avg_pool2d");

        let dy = random_vec(got.y.len(), seed ^ 1);
        let dx = avg_pool2d_backward(&dy, cfg.shape, &params).unwrap();
        assert_close(&dx, &ref_avg_backward(&to_f64(&dy), &cfg), 1e-6, 1e-5, "avg_pool2d_backward");
    }

    /// Adaptive average pooling (including output sizes larger than the input, and (1, 1))
    /// forward and backward against the references.
    #[test]
    fn adaptive_avg_pool_matches_reference(
        shape in (1usize..=2, 1usize..=3, side(), side()),
        out in (1usize..=9, 1usize..=9),
        seed in any::<u64>(),
    ) {
        let shape = [shape.0, shape.1, shape.2, shape.3];
        let x = random_vec(shape.iter().product(), seed);
        let got = adaptive_avg_pool2d(&x, shape, out).unwrap();
        prop_assert_eq!(got.shape, [shape[0], shape[1], out.0, out.1]);
        prop_assert_eq!(adaptive_output_shape(shape, out).unwrap(), got.shape);
        assert_close(&got.y, &ref_adaptive(&to_f64(&x), shape, out), 1e-6, 1e-5, "adaptive");

        let dy = random_vec(got.y.len(), seed ^ 1);
        let dx = adaptive_avg_pool2d_backward(&dy, shape, out).unwrap();
        let want = ref_adaptive_backward(&to_f64(&dy), shape, out);
        assert_close(&dx, &want, 1e-6, 1e-5, "adaptive backward");

        let global = global_avg_pool2d(&x, shape).unwrap();
        assert_close(&global.y, &ref_adaptive(&to_f64(&x), shape, (1, 1)), 1e-6, 1e-6, "global");
    }

    /// Backward passes against central differences of the f64 reference forward (whose
    /// agreement with the kernels' forward is checked above and here): L(x) = Σ dy · f(x).
    /// Max-pool inputs are distinct and spaced ≥ 2/1000 apart, so the 1e-6 steps never move
    /// an argmax; both poolings are piecewise linear, so the differences are exact up to
    /// rounding.
    #[test]
    fn pool_backward_matches_central_differences(cfg in cfg(small_side()), seed in any::<u64>()) {
        let numel: usize = cfg.shape.iter().product();
        if let Some(out_shape) = ref_shape(&cfg) {
            let x = distinct_vec(numel, seed);
            let params = cfg.max_params();
            let fwd = max_pool2d(&x, cfg.shape, &params).unwrap();
            let dy = random_vec(out_shape.iter().product(), seed ^ 2);
            let dx = max_pool2d_backward(&dy, &fwd.indices, cfg.shape, &params).unwrap();
            let dy64 = to_f64(&dy);
            let num = numeric_grad(&to_f64(&x), |x| dot(&dy64, &ref_max(x, &cfg).0));
            assert_close(&dx, &num, 1e-5, 1e-3, "max_pool2d gradcheck");
        }
        let cfg = cfg.undilated();
        if let Some(out_shape) = ref_shape(&cfg) {
            let x = random_vec(numel, seed);
            let params = cfg.avg_params();
            let dy = random_vec(out_shape.iter().product(), seed ^ 3);
            let dx = avg_pool2d_backward(&dy, cfg.shape, &params).unwrap();
            let dy64 = to_f64(&dy);
            let num = numeric_grad(&to_f64(&x), |x| dot(&dy64, &ref_avg(x, &cfg)));
            assert_close(&dx, &num, 1e-5, 1e-3, "avg_pool2d gradcheck");
        }
        let out = (cfg.kernel.0 + 1, cfg.stride.1);
        let x = random_vec(numel, seed);
        let dy = random_vec(cfg.shape[0] * cfg.shape[1] * out.0 * out.1, seed ^ 4);
        let dx = adaptive_avg_pool2d_backward(&dy, cfg.shape, out).unwrap();
        let dy64 = to_f64(&dy);
        let num = numeric_grad(&to_f64(&x), |x| dot(&dy64, &ref_adaptive(x, cfg.shape, out)));
        assert_close(&dx, &num, 1e-5, 1e-3, "adaptive gradcheck");
    }
}

// ---------------------------------------------------------------------------------------
// Hand-derived cases
// ---------------------------------------------------------------------------------------

#[test]
fn max_pool_4x4_by_2x2() {
    // x = 0..16 in a 4x4 plane:   0  1  2  3
    //                             4  5  6  7
    //                             8  9 10 11
    //                            12 13 14 15
    // Each non-overlapping 2x2 block's max is its bottom-right element: 5, 7, 13, 15, which
    // are also their flat indices. Backward sends dy = [1, 2, 3, 4] to exactly those cells.
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let p = MaxPool2dParams::square(2);
    let out = max_pool2d(&x, [1, 1, 4, 4], &p).unwrap();
    assert_eq!(out.shape, [1, 1, 2, 2]);
    assert_eq!(out.y, [5.0, 7.0, 13.0, 15.0]);
    assert_eq!(out.indices, [5, 7, 13, 15]);
    let dx = max_pool2d_backward(&[1.0, 2.0, 3.0, 4.0], &out.indices, [1, 1, 4, 4], &p).unwrap();
    let mut want = [0.0f32; 16];
    (want[5], want[7], want[13], want[15]) = (1.0, 2.0, 3.0, 4.0);
    assert_eq!(dx, want);
}

#[test]
fn max_pool_overlapping_windows_accumulate() {
    // A 4x4 plane of zeros with a 9 at (1, 1), flat index 5. 3x3 windows with stride 1 start
    // at (0,0), (0,1), (1,0), (1,1): all four contain (1, 1), so every output is 9 from index
    // 5, and backward with dy = 1 everywhere accumulates 4 into dx[5].
    let mut x = [0.0f32; 16];
    x[5] = 9.0;
    let p = MaxPool2dParams::square(3).with_stride((1, 1));
    let out = max_pool2d(&x, [1, 1, 4, 4], &p).unwrap();
    assert_eq!(out.y, [9.0; 4]);
    assert_eq!(out.indices, [5; 4]);
    let dx = max_pool2d_backward(&[1.0; 4], &out.indices, [1, 1, 4, 4], &p).unwrap();
    let mut want = [0.0f32; 16];
    want[5] = 4.0;
    assert_eq!(dx, want);
}

#[test]
fn max_pool_nan_and_negative_infinity_follow_pytorch() {
    // PyTorch's CPU kernel: `if (val > maxval || isnan(val))` from maxval = -inf, maxindex =
    // first tap. Row [1, NaN, 3, NaN] in one 1x4 window: the last NaN wins (index 3). An
    // all -inf window never updates, so it reports its first element (index 0).
    let p = MaxPool2dParams::new((1, 4));
    let out = max_pool2d(&[1.0, f32::NAN, 3.0, f32::NAN], [1, 1, 1, 4], &p).unwrap();
    assert!(out.y[0].is_nan());
    assert_eq!(out.indices, [3]);
    let out = max_pool2d(&[f32::NEG_INFINITY; 4], [1, 1, 1, 4], &p).unwrap();
    assert_eq!((out.y[0], out.indices[0]), (f32::NEG_INFINITY, 0));
}

#[test]
fn max_pool_2x2_nan_follows_pytorch() {
    // The 2x2, stride-2 path, one window per plane in row-major tap order: the last NaN wins,
    // a NaN first tap stays unless a later NaN comes, an all -inf window reports its first tap.
    let p = MaxPool2dParams::square(2);
    let inf = f32::NEG_INFINITY;
    let x = [
        1.0,
        f32::NAN,
        3.0,
        f32::NAN,
        f32::NAN,
        1.0,
        2.0,
        3.0,
        inf,
        inf,
        inf,
        inf,
    ];
    let out = max_pool2d(&x, [1, 3, 2, 2], &p).unwrap();
    assert_eq!(out.indices, [3, 0, 0]);
    assert!(out.y[0].is_nan() && out.y[1].is_nan());
    assert_eq!(out.y[2], inf);
}

#[test]
fn max_pool_window_without_input_elements() {
    // W = 2, kernel 2, padding 1, dilation 3: output length (2 + 2 - 3 - 1)/1 + 1 = 1, and
    // its taps sit at -1 and 2, both outside the input. PyTorch yields -inf; we report index
    // -1, and backward ignores it.
    let p = MaxPool2dParams::new((1, 2))
        .with_stride((1, 1))
        .with_padding((0, 1))
        .with_dilation((1, 3));
    let out = max_pool2d(&[1.0, 2.0], [1, 1, 1, 2], &p).unwrap();
    assert_eq!(out.y, [f32::NEG_INFINITY]);
    assert_eq!(out.indices, [-1]);
    let dx = max_pool2d_backward(&[5.0], &out.indices, [1, 1, 1, 2], &p).unwrap();
    assert_eq!(dx, [0.0, 0.0]);
}

#[test]
fn avg_pool_ceil_mode_clips_the_divisor() {
    // Row [1, 2, 3, 4], kernel 3, stride 2, padding 1, ceil_mode. Output length:
    // ceil((4 + 2 - 3) / 2) + 1 = 3, and the last window starts at 2*2 - 1 = 3 < 4 + 1, so
    // it stays (floor mode would give 2). Windows in padded coordinates [-1, 5):
    //   o=0: taps -1..2 -> padded area 3, real {1, 2}: 3/3 = 1   (exclude pad: 3/2 = 1.5)
    //   o=1: taps 1..4  -> padded area 3, real {2, 3, 4}: 9/3 = 3 (exclude pad: 3)
    //   o=2: taps 3..6, clipped at the padded end 5 -> area 2, real {4}: 4/2 = 2 (exclude: 4)
    let x = [1.0, 2.0, 3.0, 4.0];
    let p = AvgPool2dParams::new((1, 3))
        .with_stride((1, 2))
        .with_padding((0, 1))
        .with_ceil_mode(true);
    assert_eq!(avg_pool2d(&x, [1, 1, 1, 4], &p).unwrap().y, [1.0, 3.0, 2.0]);
    let p = p.with_count_include_pad(false);
    assert_eq!(avg_pool2d(&x, [1, 1, 1, 4], &p).unwrap().y, [1.5, 3.0, 4.0]);
    // Backward without pad counting: dy = [2, 3, 4] sends 2/2 to x0, x1; 3/3 to x1, x2, x3;
    // 4/1 to x3: dx = [1, 2, 1, 5].
    let dx = avg_pool2d_backward(&[2.0, 3.0, 4.0], [1, 1, 1, 4], &p).unwrap();
    assert_eq!(dx, [1.0, 2.0, 1.0, 5.0]);
    // divisor_override replaces both rules: sums 3, 9, 4 over 2.
    let p = p.with_divisor_override(Some(2));
    assert_eq!(avg_pool2d(&x, [1, 1, 1, 4], &p).unwrap().y, [1.5, 4.5, 2.0]);
}

#[test]
fn ceil_mode_output_sizes() {
    // L = 5, k = 2, s = 2: floor((5 - 2)/2) + 1 = 2; ceil gives ceil(3/2) + 1 = 3 (the last
    // window starts at 4 < 5 and covers one element).
    let p = MaxPool2dParams::new((1, 2));
    assert_eq!(p.output_shape([1, 1, 1, 5]).unwrap(), [1, 1, 1, 2]);
    assert_eq!(
        p.with_ceil_mode(true).output_shape([1, 1, 1, 5]).unwrap(),
        [1, 1, 1, 3]
    );
    // With padding 1: ceil((5 + 2 - 2)/2) + 1 = 4, but window 3 would start at 3*2 - 1 = 5,
    // entirely in the right padding ((4 - 1) * 2 = 6 >= L + p = 6), so it is dropped: 3.
    let p = p.with_padding((0, 1)).with_ceil_mode(true);
    assert_eq!(p.output_shape([1, 1, 1, 5]).unwrap(), [1, 1, 1, 3]);
}

#[test]
fn adaptive_and_global_hand_cases() {
    // Row [1, 2, 3, 4, 5] to 3 outputs: windows [0, ceil(5/3)=2), [floor(5/3)=1,
    // ceil(10/3)=4), [floor(10/3)=3, 5): means 1.5, 3, 4.5.
    let x = [1.0, 2.0, 3.0, 4.0, 5.0];
    assert_eq!(
        adaptive_avg_pool2d(&x, [1, 1, 1, 5], (1, 3)).unwrap().y,
        [1.5, 3.0, 4.5]
    );
    // Global: the mean of [1, 2, 3, 4] is 2.5; backward spreads dy = 4 as 4/4 = 1 each.
    let g = global_avg_pool2d(&[1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]).unwrap();
    assert_eq!((g.y, g.shape), (vec![2.5], [1, 1, 1, 1]));
    assert_eq!(
        global_avg_pool2d_backward(&[4.0], [1, 1, 2, 2]).unwrap(),
        [1.0; 4]
    );
    assert_eq!(
        adaptive_avg_pool2d_backward(&[4.0], [1, 1, 2, 2], (1, 1)).unwrap(),
        [1.0; 4]
    );
}

// ---------------------------------------------------------------------------------------
// Invalid configurations
// ---------------------------------------------------------------------------------------

#[test]
fn invalid_configurations_are_errors() {
    let x = [0.0f32; 16];
    let s = [1, 1, 4, 4];
    // Each invalid configuration with the message that names its fault.
    let positive = "stride (0) and dilation (1) must all be positive";
    let bad_max = [
        (MaxPool2dParams::new((0, 2)), "height: kernel (0), "),
        (
            MaxPool2dParams::square(2).with_stride((0, 1)),
            "height: kernel (2), ",
        ),
        (
            MaxPool2dParams::square(2).with_dilation((1, 0)),
            "width: kernel (2), stride (2) and dilation (0) must all be positive",
        ),
        (
            MaxPool2dParams::square(3).with_padding((2, 0)),
            "height: padding 2 is more than half the kernel size 3",
        ),
        (
            MaxPool2dParams::square(5),
            "height: input 4 with padding 0 is shorter than the dilated kernel (5)",
        ),
        (
            // The dilated kernel spans 5 > 4.
            MaxPool2dParams::square(3).with_dilation((2, 2)),
            "height: input 4 with padding 0 is shorter than the dilated kernel (5)",
        ),
    ];
    for (p, needle) in bad_max {
        assert!(is_shape_error(max_pool2d(&x, s, &p), "max_pool2d"), "{p:?}");
        let err = assert_error(p.output_shape(s), "ShapeMismatch", needle);
        if needle.ends_with(", ") {
            assert!(err.to_string().ends_with(positive), "{err}");
        }
        assert!(is_shape_error(
            max_pool2d_backward(&[0.0], &[0], s, &p),
            "max_pool2d_backward"
        ));
    }
    let ok = MaxPool2dParams::square(2);
    // Input length, zero spatial size.
    assert!(is_shape_error(max_pool2d(&x[..15], s, &ok), "max_pool2d"));
    assert!(is_shape_error(
        max_pool2d(&[], [1, 1, 0, 4], &ok),
        "max_pool2d"
    ));
    // Backward: wrong dy / indices lengths, an index outside the plane, below -1.
    assert_error(
        max_pool2d_backward(&[0.0; 3], &[0; 4], s, &ok),
        "ShapeMismatch",
        "max_pool2d_backward: dy has 3 elements, but shape [1, 1, 2, 2] needs 4",
    );
    assert_error(
        max_pool2d_backward(&[0.0; 4], &[0; 3], s, &ok),
        "ShapeMismatch",
        "max_pool2d_backward: indices has 3 elements, but shape [1, 1, 2, 2] needs 4",
    );
    assert_error(
        max_pool2d_backward(&[0.0; 4], &[0, 1, 2, 16], s, &ok),
        "ShapeMismatch",
        "max_pool2d_backward: indices[3] = 16 is outside a 4x4 input plane",
    );
    assert_error(
        max_pool2d_backward(&[0.0; 4], &[0, 1, 2, -2], s, &ok),
        "ShapeMismatch",
        "max_pool2d_backward: indices[3] = -2 is outside a 4x4 input plane",
    );
    // Element count overflow.
    assert_error(
        ok.output_shape([usize::MAX, 2, 2, 2]),
        "ShapeMismatch",
        "max_pool2d: shape [18446744073709551615, 2, 2, 2] has more elements than fit in usize",
    );

    let bad_avg = [
        (
            AvgPool2dParams::new((2, 0)),
            "width: kernel (0), stride (0) and dilation (1)",
        ),
        (
            AvgPool2dParams::square(2).with_stride((1, 0)),
            "width: kernel (2), stride (0) and dilation (1)",
        ),
        (
            AvgPool2dParams::square(2).with_padding((0, 2)),
            "width: padding 2 is more than half the kernel size 2",
        ),
        (
            AvgPool2dParams::square(2).with_divisor_override(Some(0)),
            "divisor_override must not be 0",
        ),
        (
            AvgPool2dParams::new((6, 1)),
            "height: input 4 with padding 0 is shorter than the dilated kernel (6)",
        ),
    ];
    for (p, needle) in bad_avg {
        assert!(is_shape_error(avg_pool2d(&x, s, &p), "avg_pool2d"), "{p:?}");
        let err = assert_error(
            avg_pool2d_backward(&[0.0; 4], s, &p),
            "ShapeMismatch",
            needle,
        );
        assert!(
            err.to_string().starts_with("avg_pool2d_backward: "),
            "{err}"
        );
    }
    let ok = AvgPool2dParams::square(2);
    assert!(is_shape_error(avg_pool2d(&x[..3], s, &ok), "avg_pool2d"));
    assert_error(
        avg_pool2d_backward(&[0.0; 5], s, &ok),
        "ShapeMismatch",
        "avg_pool2d_backward: dy has 5 elements, but shape [1, 1, 2, 2] needs 4",
    );

    assert!(is_shape_error(
        adaptive_avg_pool2d(&x, s, (0, 2)),
        "adaptive_avg_pool2d"
    ));
    assert_error(
        adaptive_avg_pool2d(&x[..2], s, (2, 2)),
        "ShapeMismatch",
        "adaptive_avg_pool2d: x has 2 elements, but shape [1, 1, 4, 4] needs 16",
    );
    assert_error(
        adaptive_avg_pool2d(&[], [1, 1, 4, 0], (2, 2)),
        "ShapeMismatch",
        "adaptive_avg_pool2d: input [1, 1, 4, 0] has an empty spatial dimension",
    );
    assert_error(
        adaptive_avg_pool2d_backward(&[0.0; 3], s, (2, 2)),
        "ShapeMismatch",
        "adaptive_avg_pool2d_backward: dy has 3 elements, but shape [1, 1, 2, 2] needs 4",
    );
    assert_error(
        global_avg_pool2d(&x[..15], s),
        "ShapeMismatch",
        "global_avg_pool2d: x has 15 elements, but shape [1, 1, 4, 4] needs 16",
    );
    assert_error(
        global_avg_pool2d_backward(&[0.0; 2], s),
        "ShapeMismatch",
        "global_avg_pool2d_backward: dy has 2 elements, but shape [1, 1, 1, 1] needs 1",
    );
}

#[test]
fn empty_batch_is_fine() {
    // N = 0 (allowed by PyTorch): nothing to pool, empty results.
    let p = MaxPool2dParams::square(2);
    let out = max_pool2d(&[], [0, 3, 4, 4], &p).unwrap();
    assert_eq!((out.y.len(), out.shape), (0, [0, 3, 2, 2]));
    assert!(
        max_pool2d_backward(&[], &[], [0, 3, 4, 4], &p)
            .unwrap()
            .is_empty()
    );
    assert!(
        avg_pool2d(&[], [0, 3, 4, 4], &AvgPool2dParams::square(2))
            .unwrap()
            .y
            .is_empty()
    );
    assert!(global_avg_pool2d(&[], [0, 3, 4, 4]).unwrap().y.is_empty());
}

/// The `_into` forms write every element of reused buffers: buffers full of NaN from an
/// earlier call give the reference's values, for LeNet-5's 2x2 path and for overlapping
/// windows (where the backward pass adds into `dx`, so a missing zeroing would show).
#[test]
fn into_forms_overwrite_dirty_buffers() {
    for (shape, params) in [
        ([2, 3, 28, 28], MaxPool2dParams::square(2)),
        (
            [2, 3, 9, 9],
            MaxPool2dParams::square(3)
                .with_stride((2, 2))
                .with_padding((1, 1)),
        ),
    ] {
        let cfg = Cfg {
            shape,
            kernel: params.kernel,
            stride: params.stride,
            padding: params.padding,
            dilation: params.dilation,
            ceil_mode: false,
            count_include_pad: true,
        };
        let out_shape = ref_shape(&cfg).unwrap();
        let out_len: usize = out_shape.iter().product();
        let x = distinct_vec(shape.iter().product(), 11);
        let (mut y, mut idx) = (vec![f32::NAN; out_len], vec![-7i64; out_len]);
        let got_shape = max_pool2d_into(&x, shape, &params, &mut y, &mut idx).unwrap();
        assert_eq!(got_shape, out_shape);
        let (want_y, want_idx) = ref_max(&to_f64(&x), &cfg);
        assert_close(&y, &want_y, 0.0, 0.0, "max_pool2d_into y");
        assert_eq!(idx, want_idx);
        let dy = random_vec(out_len, 12);
        let mut dx = vec![f32::NAN; x.len()];
        max_pool2d_backward_into(&dy, &idx, shape, &params, &mut dx).unwrap();
        let want_dx = ref_max_backward(&to_f64(&dy), &want_idx, &cfg);
        assert_close(&dx, &want_dx, 1e-6, 1e-6, "max_pool2d_backward_into");
        // Buffers of the wrong length are errors, not panics.
        assert!(is_shape_error(
            max_pool2d_into(&x, shape, &params, &mut y[1..], &mut idx),
            "max_pool2d"
        ));
        assert!(is_shape_error(
            max_pool2d_backward_into(&dy, &idx, shape, &params, &mut dx[1..]),
            "max_pool2d_backward"
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Determinism
// ---------------------------------------------------------------------------------------

#[test]
fn one_and_two_threads_agree_bitwise() {
    // 4 * 8 * 33 * 33 = 34848 elements: above the parallel threshold.
    let shape = [4, 8, 33, 33];
    let x = random_vec(shape.iter().product(), 7);
    let mp = MaxPool2dParams::square(3)
        .with_stride((2, 2))
        .with_padding((1, 1));
    let ap = AvgPool2dParams::square(3)
        .with_stride((1, 1))
        .with_padding((1, 1))
        .with_count_include_pad(false);
    let run = || {
        let m = max_pool2d(&x, shape, &mp).unwrap();
        let dy = random_vec(m.y.len(), 8);
        let mdx = max_pool2d_backward(&dy, &m.indices, shape, &mp).unwrap();
        let a = avg_pool2d(&x, shape, &ap).unwrap();
        let dy = random_vec(a.y.len(), 9);
        let adx = avg_pool2d_backward(&dy, shape, &ap).unwrap();
        let ad = adaptive_avg_pool2d(&x, shape, (5, 7)).unwrap();
        let dy = random_vec(ad.y.len(), 10);
        let addx = adaptive_avg_pool2d_backward(&dy, shape, (5, 7)).unwrap();
        let g = global_avg_pool2d(&x, shape).unwrap();
        let gdx = global_avg_pool2d_backward(&g.y, shape).unwrap();
        [m.y, mdx, a.y, adx, ad.y, addx, g.y, gdx].map(|v| bits(&v))
    };
    let one = pool(1).install(run);
    let two = pool(2).install(run);
    assert_eq!(one, two);
}
