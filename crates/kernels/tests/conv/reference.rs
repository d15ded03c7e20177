//! The plain 7-nested-loop convolution in f64 (forward, input gradient, weight gradient, bias
//! gradient) and the check every convolution test runs: each pass on every instruction-set
//! path and every convolution path that serves it against it, on 1 thread, then bit for bit
//! against 2 threads.

use proptest::prelude::*;
use ventral_kernels::conv::plan::plan;
use ventral_kernels::conv::{Conv2d, Conv2dGeometry, Conv2dParams, ConvPath, ConvPlan, Pass};

use crate::common::{isas, pool, random_vec};

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

/// Checks `got` against the f64 reference, each element a sum of up to `terms` products
/// whose magnitudes add up to `scale`, within `min(terms + 8, 8 + 2 sqrt(terms)) eps scale`.
///
/// `(terms + 8) eps scale` is the worst case of f32 summation in any order (Higham, *Accuracy
/// and Stability of Numerical Algorithms*, 2nd ed., section 4.2, with slack for the bias and
/// the lane and segment sums). Rounding errors of random sign grow like `sqrt(terms)` instead
/// (Higham and Mary, "A new approach to probabilistic rounding error analysis", SIAM J. Sci.
/// Comput. 41(5), 2019), and `scale`, the sum of magnitudes, is far above any partial sum of
/// random-signed data, so `(8 + 2 sqrt(terms)) eps scale` (4 sqrt(terms) unit roundoffs) still
/// leaves a wide margin. It matters for the weight gradient at batch 64: a sum of 50,176
/// products whose worst-case bound is as large as the value itself, so an image dropped or
/// counted twice would pass it, but not the square-root bound.
///
/// `growth` scales the bound for paths that transform their operands before summing:
/// [`WINOGRAD_GROWTH`] for Winograd's F(4x4, 3x3), 1 elsewhere.
fn assert_close(
    what: &str,
    got: &[f32],
    want: &[(f64, f64)],
    terms: usize,
    growth: f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    let n = terms as f64;
    let eps = growth * f64::from(f32::EPSILON) * (n + 8.0).min(8.0 + 2.0 * n.sqrt());
    for (i, (&g, &(w, scale))) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (g as f64 - w).abs() <= eps * scale + 1e-30,
            "{}[{}] = {}, want {} (scale {}, {} terms)",
            what,
            i,
            g,
            w,
            scale,
            terms
        );
    }
    Ok(())
}

/// How much larger than a plain sum's the rounding error of Winograd's F(4x4, 3x3) may be,
/// measured against [`tile_scaled`] magnitudes: its transforms scale values by up to 8
/// (`A^T`) and 5 (`B^T`) before they are summed back, and the transformed weights carry the
/// roundings of `G`'s sixths, twelfths and twenty-fourths. The property tests pass at 1.5 (measured); 3 leaves room for other
/// instruction sets' summation orders.
const WINOGRAD_GROWTH: f64 = 3.0;

/// The reference with each output's magnitude `scale` replaced by 4x the largest over its
/// 4x4 Winograd tile (maps `h x w`): every output of a tile is computed from the tile's
/// whole 6x6 input window, whose products four corner outputs' 3x3 windows cover, so its
/// rounding error scales with the window, not with its own receptive field.
fn tile_scaled(want: &[(f64, f64)], h: usize, w: usize) -> Vec<(f64, f64)> {
    let mut tile_max = vec![0.0f64; want.len()];
    let tile_of = |i: usize| {
        let (plane, pos) = (i / (h * w), i % (h * w));
        (plane, pos / w / 4, pos % w / 4)
    };
    let tiles_w = w.div_ceil(4);
    let tiles_h = h.div_ceil(4);
    let index = |(plane, th, tw): (usize, usize, usize)| (plane * tiles_h + th) * tiles_w + tw;
    for (i, &(_, scale)) in want.iter().enumerate() {
        let t = index(tile_of(i));
        tile_max[t] = tile_max[t].max(scale);
    }
    want.iter()
        .enumerate()
        .map(|(i, &(value, _))| (value, 4.0 * tile_max[index(tile_of(i))]))
        .collect()
}

/// The weight gradient's reference with each tap's magnitude `scale` replaced by the sum
/// over its kernel's `kernel` taps: Winograd's weight gradient sums every tile's products of
/// all the taps in the transformed domain before separating them.
fn kernel_scaled(want: &[(f64, f64)], kernel: usize) -> Vec<(f64, f64)> {
    want.chunks(kernel)
        .flat_map(|taps| {
            let sum: f64 = taps.iter().map(|&(_, scale)| scale).sum();
            taps.iter().map(move |&(value, _)| (value, sum))
        })
        .collect()
}

/// Which of `[y, dx, dw, db]` to compute and check.
type Passes = [bool; 4];

/// Runs the selected passes of forward, both gradients and the bias gradient and returns
/// `[y, dx, dw, db]`, each empty if not selected.
fn run(conv: &Conv2d, passes: Passes, [x, w, bias, dy]: [&[f32]; 4]) -> [Vec<f32>; 4] {
    let g = conv.geometry();
    let len = |s: [usize; 4]| s.iter().product::<usize>();
    let buffer = |i: usize, n: usize| vec![f32::NAN; if passes[i] { n } else { 0 }];
    let mut y = buffer(0, len(g.output_shape()));
    let mut dx = buffer(1, len(g.input_shape()));
    let mut dw = buffer(2, len(g.weight_shape()));
    let mut db = buffer(3, g.out_channels);
    if passes[0] {
        conv.forward(x, w, Some(bias), &mut y).unwrap();
    }
    if passes[1] {
        conv.backward_input(dy, w, &mut dx).unwrap();
    }
    if passes[2] {
        conv.backward_weight(x, dy, &mut dw).unwrap();
    }
    if passes[3] {
        conv.backward_bias(dy, &mut db).unwrap();
    }
    [y, dx, dw, db]
}

/// One convolution to check: shapes, parameters and the seed of its random data.
#[derive(Debug, Clone)]
pub struct Case {
    /// `[N, C, H, W]`.
    pub input: [usize; 4],
    /// `[O, C / groups, KH, KW]`.
    pub weight: [usize; 4],
    /// Stride, padding, dilation and groups.
    pub params: Conv2dParams,
    /// Seed of the random input, weights, bias and output gradient.
    pub seed: u64,
}

/// The plan of `conv` with `path` forced: `path` for each pass it serves, the planned path
/// for the others (the fallback `ConvPath::serves` and `plan` document).
pub fn forced_plan(conv: &Conv2d, isa: ventral_kernels::Isa, path: ConvPath) -> ConvPlan {
    let g = conv.geometry();
    let pick = |pass| {
        if path.serves(g, isa, pass) {
            path
        } else {
            plan(g, isa, pass)
        }
    };
    ConvPlan {
        forward: pick(Pass::Forward),
        input_gradient: pick(Pass::InputGradient),
        weight_gradient: pick(Pass::WeightGradient),
    }
}

/// Runs every pass (forward with bias, input, weight and bias gradient) of `case` on every
/// instruction-set path against the f64 reference on 1 thread, then again on 2 threads, bit
/// for bit: first as planned (or as `VENTRAL_CONV` forces), then with each convolution path
/// forced that serves a pass of the case differently from the plan (checking only the passes
/// it changes). An invalid geometry must be an error, not a panic.
pub fn check_case(case: &Case) -> Result<(), TestCaseError> {
    let Ok(geometry) = Conv2dGeometry::new(case.input, case.weight, case.params) else {
        // Invalid geometry (kernel larger than the padded input): must be an error, not a panic.
        let err = Conv2d::new(case.input, case.weight, case.params).unwrap_err();
        prop_assert!(
            err.to_string().contains("larger than the padded input"),
            "{}",
            err
        );
        return Ok(());
    };
    let len = |s: [usize; 4]| s.iter().product::<usize>();
    let x = random_vec(len(geometry.input_shape()), -1.0, 1.0, case.seed);
    let w = random_vec(len(geometry.weight_shape()), -1.0, 1.0, case.seed ^ 1);
    let bias = random_vec(geometry.out_channels, -1.0, 1.0, case.seed ^ 2);
    let dy = random_vec(len(geometry.output_shape()), -1.0, 1.0, case.seed ^ 3);
    let want = reference(&geometry, &x, &w, &bias, &dy);
    for isa in isas() {
        let planned = Conv2d::new(case.input, case.weight, case.params)
            .unwrap()
            .with_isa(isa)
            .unwrap();
        let data = [&x[..], &w, &bias, &dy];
        check_conv(&planned, [true; 4], isa, &geometry, &want, data)?;
        let mut seen = vec![planned.plan()];
        for path in ConvPath::ALL {
            let conv = planned.with_path(Some(path));
            let forced = conv.plan();
            prop_assert_eq!(forced, forced_plan(&planned, isa, path), "{:?}", path);
            if seen.contains(&forced) {
                continue;
            }
            seen.push(forced);
            let changed = Pass::ALL.map(|pass| forced.get(pass) != planned.plan().get(pass));
            let passes = [changed[0], changed[1], changed[2], false];
            check_conv(&conv, passes, isa, &geometry, &want, data)?;
        }
    }
    Ok(())
}

/// The selected passes of one convolution on one instruction set against the reference
/// `want` of its data `[x, w, bias, dy]`, on 1 thread, then bit for bit on 2.
fn check_conv(
    conv: &Conv2d,
    passes: Passes,
    isa: ventral_kernels::Isa,
    geometry: &Conv2dGeometry,
    want: &Reference,
    data: [&[f32]; 4],
) -> Result<(), TestCaseError> {
    let dy = data[3];
    let k = geometry.in_channels / geometry.params.groups * geometry.kernel_h * geometry.kernel_w;
    let [y1, dx1, dw1, db1] = pool(1).install(|| run(conv, passes, data));
    let plan = conv.plan();
    let label = |pass: &str| format!("{isa:?} {pass} ({plan})");
    // The input gradient's transposed convolution is a forward pass, Winograd's if it serves.
    if passes[0] {
        if plan.forward == ConvPath::Winograd {
            let tiled = tile_scaled(&want.y, geometry.out_h, geometry.out_w);
            assert_close(&label("y"), &y1, &tiled, k, WINOGRAD_GROWTH)?;
        } else {
            assert_close(&label("y"), &y1, &want.y, k, 1.0)?;
        }
    }
    if passes[1] {
        let terms = geometry.out_channels * geometry.kernel_h * geometry.kernel_w;
        if plan.input_gradient == ConvPath::Transposed {
            let tiled = tile_scaled(&want.dx, geometry.in_h, geometry.in_w);
            assert_close(&label("dx"), &dx1, &tiled, terms, WINOGRAD_GROWTH)?;
        } else {
            assert_close(&label("dx"), &dx1, &want.dx, terms, 1.0)?;
        }
    }
    if passes[2] {
        let terms = geometry.batch * geometry.out_h * geometry.out_w;
        if plan.weight_gradient == ConvPath::Winograd {
            let kernel = geometry.kernel_h * geometry.kernel_w;
            let summed = kernel_scaled(&want.dw, kernel);
            assert_close(&label("dw"), &dw1, &summed, terms, WINOGRAD_GROWTH)?;
        } else {
            assert_close(&label("dw"), &dw1, &want.dw, terms, 1.0)?;
        }
    }
    // db1 is empty unless selected.
    for (o, &got) in db1.iter().enumerate() {
        let plane = geometry.out_h * geometry.out_w;
        let want: f64 = (0..geometry.batch)
            .flat_map(|n| &dy[(n * geometry.out_channels + o) * plane..][..plane])
            .map(|&v| v as f64)
            .sum();
        prop_assert!(
            (got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "{:?} db[{}] = {}, want {} ({})",
            isa,
            o,
            got,
            want,
            plan
        );
    }
    // Bit-identical with two threads.
    let two = pool(2).install(|| run(conv, passes, data));
    for (pass, (a, b)) in ["y", "dx", "dw", "db"]
        .iter()
        .zip([y1, dx1, dw1, db1].iter().zip(&two))
    {
        let first = a
            .iter()
            .zip(b)
            .position(|(p, q)| p.to_bits() != q.to_bits());
        prop_assert!(
            first.is_none(),
            "{:?} {} ({}): 1 vs 2 threads differ first at element {:?}",
            isa,
            pass,
            plan,
            first
        );
    }
    Ok(())
}
