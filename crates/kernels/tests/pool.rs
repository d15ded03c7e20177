//! Pooling against plain f64 reference implementations written directly from PyTorch's
//! documented semantics, over random shapes and configurations; backward passes against a
//! reference backward and against central differences of the f64 reference forward; a few
//! hand-derived cases; invalid configurations; 1 vs 2 threads bit-identical.

use std::sync::OnceLock;

use proptest::prelude::*;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use ventral_kernels::KernelError;
use ventral_kernels::pool::{
    AvgPool2dParams, MaxPool2dParams, adaptive_avg_pool2d, adaptive_avg_pool2d_backward,
    adaptive_output_shape, avg_pool2d, avg_pool2d_backward, global_avg_pool2d,
    global_avg_pool2d_backward, max_pool2d, max_pool2d_backward,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

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
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `len` distinct values spaced `2 / len` apart in `[-1, 1)`, in random order, so no window
/// has a tie and a perturbation of 1e-6 never changes an argmax.
fn distinct_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<u64> = (0..len).map(|_| rng.random_range(0..u64::MAX)).collect();
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by_key(|&i| keys[i]);
    order
        .into_iter()
        .map(|r| (r as f32 - len as f32 / 2.0) * (2.0 / len as f32))
        .collect()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `|got - want| <= atol + rtol |want|` elementwise (infinities must match exactly).
fn assert_close(got: &[f32], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = f64::from(g);
        assert!(
            g == w || (g - w).abs() <= atol + rtol * w.abs(),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

/// Central differences of `loss` at `x` (f64, step 1e-6, PyTorch gradcheck's).
fn numeric_grad(x: &[f64], loss: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    const EPS: f64 = 1e-6;
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            xp[i] = x[i] + EPS;
            let up = loss(&xp);
            xp[i] = x[i] - EPS;
            let down = loss(&xp);
            xp[i] = x[i];
            (up - down) / (2.0 * EPS)
        })
        .collect()
}

/// `Σ dy · y` over finite outputs (a window with no input element gives `-inf` and no
/// gradient).
fn dot(dy: &[f64], y: &[f64]) -> f64 {
    dy.iter()
        .zip(y)
        .filter(|(_, v)| v.is_finite())
        .map(|(d, v)| d * v)
        .sum()
}

// ---------------------------------------------------------------------------------------
// References, written from the PyTorch documentation (nn.MaxPool2d / nn.AvgPool2d /
// nn.AdaptiveAvgPool2d): enumerate every tap of every window; no clipping arithmetic.
// ---------------------------------------------------------------------------------------

/// A pooling configuration as the test generates it (for both max and avg pooling).
#[derive(Debug, Clone, Copy)]
struct Cfg {
    shape: [usize; 4],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    ceil_mode: bool,
    count_include_pad: bool,
}

impl Cfg {
    fn max_params(&self) -> MaxPool2dParams {
        MaxPool2dParams::new(self.kernel)
            .with_stride(self.stride)
            .with_padding(self.padding)
            .with_dilation(self.dilation)
            .with_ceil_mode(self.ceil_mode)
    }

    fn avg_params(&self) -> AvgPool2dParams {
        AvgPool2dParams::new(self.kernel)
            .with_stride(self.stride)
            .with_padding(self.padding)
            .with_ceil_mode(self.ceil_mode)
            .with_count_include_pad(self.count_include_pad)
    }

    /// The same configuration without dilation (avg pooling has none).
    fn undilated(self) -> Cfg {
        Cfg {
            dilation: (1, 1),
            ..self
        }
    }
}

/// Output length from the nn.MaxPool2d docs: `floor_or_ceil((L + 2p - d(k-1) - 1)/s + 1)`,
/// dropping the last window in ceil mode if it would start past the input and left padding.
/// `None` where PyTorch raises (bad parameters, padding > k/2, empty output).
fn ref_len(len: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Option<usize> {
    if k == 0 || s == 0 || d == 0 || len == 0 || p > k / 2 {
        return None;
    }
    let q = (len as f64 + 2.0 * p as f64 - d as f64 * (k as f64 - 1.0) - 1.0) / s as f64 + 1.0;
    let mut out = if ceil { q.ceil() } else { q.floor() };
    if ceil && (out - 1.0) * s as f64 >= (len + p) as f64 {
        out -= 1.0;
    }
    (out >= 1.0).then_some(out as usize)
}

fn ref_shape(cfg: &Cfg) -> Option<[usize; 4]> {
    let [n, c, h, w] = cfg.shape;
    let oh = ref_len(
        h,
        cfg.kernel.0,
        cfg.stride.0,
        cfg.padding.0,
        cfg.dilation.0,
        cfg.ceil_mode,
    )?;
    let ow = ref_len(
        w,
        cfg.kernel.1,
        cfg.stride.1,
        cfg.padding.1,
        cfg.dilation.1,
        cfg.ceil_mode,
    )?;
    Some([n, c, oh, ow])
}

/// Max pooling: the largest real input over the window's taps (first on ties); `(-inf, -1)`
/// if no tap lands in the input.
fn ref_max(x: &[f64], cfg: &Cfg) -> (Vec<f64>, Vec<i64>) {
    let [n, c, h, w] = cfg.shape;
    let [_, _, oh, ow] = ref_shape(cfg).unwrap();
    let (mut y, mut idx) = (Vec::new(), Vec::new());
    for p in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let (mut best, mut at) = (f64::NEG_INFINITY, -1i64);
                for a in 0..cfg.kernel.0 {
                    for b in 0..cfg.kernel.1 {
                        let ih =
                            (i * cfg.stride.0 + a * cfg.dilation.0) as i64 - cfg.padding.0 as i64;
                        let iw =
                            (j * cfg.stride.1 + b * cfg.dilation.1) as i64 - cfg.padding.1 as i64;
                        if ih < 0 || iw < 0 || ih >= h as i64 || iw >= w as i64 {
                            continue;
                        }
                        let flat = ih * w as i64 + iw;
                        let v = x[p * h * w + flat as usize];
                        if at < 0 || v > best {
                            best = v;
                            at = flat;
                        }
                    }
                }
                y.push(best);
                idx.push(at);
            }
        }
    }
    (y, idx)
}

/// Max pooling backward: each output's gradient goes to its reference argmax.
fn ref_max_backward(dy: &[f64], idx: &[i64], cfg: &Cfg) -> Vec<f64> {
    let [n, c, h, w] = cfg.shape;
    let out_plane = dy.len() / (n * c);
    let mut dx = vec![0.0; n * c * h * w];
    for (o, (&g, &i)) in dy.iter().zip(idx).enumerate() {
        if i >= 0 {
            dx[(o / out_plane) * h * w + i as usize] += g;
        }
    }
    dx
}

/// Average pooling: taps inside `[-p, L + p)` count for `count_include_pad`, taps inside
/// `[0, L)` are summed and counted otherwise; a window without real taps gives 0.
/// Returns the outputs and, per output, its `(real taps as flat indices, divisor)`.
#[allow(clippy::type_complexity)]
fn ref_avg_windows(cfg: &Cfg) -> Vec<(usize, Vec<usize>, f64)> {
    let [n, c, h, w] = cfg.shape;
    let [_, _, oh, ow] = ref_shape(cfg).unwrap();
    let mut out = Vec::new();
    for p in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let (mut real, mut padded_h, mut padded_w) = (Vec::new(), 0, 0);
                for a in 0..cfg.kernel.0 {
                    let ih = (i * cfg.stride.0 + a) as i64 - cfg.padding.0 as i64;
                    if ih < (h + cfg.padding.0) as i64 {
                        padded_h += 1;
                    }
                }
                for b in 0..cfg.kernel.1 {
                    let iw = (j * cfg.stride.1 + b) as i64 - cfg.padding.1 as i64;
                    if iw < (w + cfg.padding.1) as i64 {
                        padded_w += 1;
                    }
                }
                for a in 0..cfg.kernel.0 {
                    for b in 0..cfg.kernel.1 {
                        let ih = (i * cfg.stride.0 + a) as i64 - cfg.padding.0 as i64;
                        let iw = (j * cfg.stride.1 + b) as i64 - cfg.padding.1 as i64;
                        if ih >= 0 && iw >= 0 && ih < h as i64 && iw < w as i64 {
                            real.push(p * h * w + ih as usize * w + iw as usize);
                        }
                    }
                }
                let div = if cfg.count_include_pad {
                    (padded_h * padded_w) as f64
                } else {
                    real.len() as f64
                };
                out.push((p, real, div));
            }
        }
    }
    out
}

fn ref_avg(x: &[f64], cfg: &Cfg) -> Vec<f64> {
    ref_avg_windows(cfg)
        .into_iter()
        .map(|(_, real, div)| {
            if real.is_empty() {
                0.0
            } else {
                real.iter().map(|&i| x[i]).sum::<f64>() / div
            }
        })
        .collect()
}

fn ref_avg_backward(dy: &[f64], cfg: &Cfg) -> Vec<f64> {
    let [n, c, h, w] = cfg.shape;
    let mut dx = vec![0.0; n * c * h * w];
    for ((_, real, div), &g) in ref_avg_windows(cfg).into_iter().zip(dy) {
        for i in real {
            dx[i] += g / div;
        }
    }
    dx
}

/// Adaptive average pooling with the windows of the nn.AdaptiveAvgPool2d docs:
/// `[floor(i L / out), ceil((i + 1) L / out))`.
fn ref_adaptive_windows(shape: [usize; 4], out: (usize, usize)) -> Vec<Vec<usize>> {
    let [n, c, h, w] = shape;
    let win = |i: usize, len: usize, o: usize| {
        let lo = (i as f64 * len as f64 / o as f64).floor() as usize;
        let hi = ((i + 1) as f64 * len as f64 / o as f64).ceil() as usize;
        lo..hi
    };
    let mut all = Vec::new();
    for p in 0..n * c {
        for i in 0..out.0 {
            for j in 0..out.1 {
                let mut cells = Vec::new();
                for ih in win(i, h, out.0) {
                    for iw in win(j, w, out.1) {
                        cells.push(p * h * w + ih * w + iw);
                    }
                }
                all.push(cells);
            }
        }
    }
    all
}

fn ref_adaptive(x: &[f64], shape: [usize; 4], out: (usize, usize)) -> Vec<f64> {
    ref_adaptive_windows(shape, out)
        .iter()
        .map(|cells| cells.iter().map(|&i| x[i]).sum::<f64>() / cells.len() as f64)
        .collect()
}

fn ref_adaptive_backward(dy: &[f64], shape: [usize; 4], out: (usize, usize)) -> Vec<f64> {
    let mut dx = vec![0.0; shape.iter().product()];
    for (cells, &g) in ref_adaptive_windows(shape, out).iter().zip(dy) {
        for &i in cells {
            dx[i] += g / cells.len() as f64;
        }
    }
    dx
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn side() -> impl Strategy<Value = usize> + Clone {
    prop::sample::select(vec![1usize, 2, 3, 4, 5, 7, 8, 12, 17])
}

fn small_side() -> impl Strategy<Value = usize> + Clone {
    prop::sample::select(vec![1usize, 2, 3, 4, 5, 7, 9])
}

/// A configuration over an input with sides drawn from `side`; padding is kept within the
/// legal `k / 2` (illegal padding has its own test), but the output may be empty.
fn cfg(side: impl Strategy<Value = usize> + Clone) -> impl Strategy<Value = Cfg> {
    (
        (1usize..=2, 1usize..=3, side.clone(), side),
        (1usize..=4, 1usize..=4, 1usize..=3, 1usize..=3),
        (0usize..=2, 0usize..=2, 1usize..=3, 1usize..=3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |((n, c, h, w), (kh, kw, sh, sw), (ph, pw, dh, dw), ceil, cip)| Cfg {
                shape: [n, c, h, w],
                kernel: (kh, kw),
                stride: (sh, sw),
                padding: (ph.min(kh / 2), pw.min(kw / 2)),
                dilation: (dh, dw),
                ceil_mode: ceil,
                count_include_pad: cip,
            },
        )
}

fn is_shape_error<T>(r: Result<T, KernelError>, op: &str) -> bool {
    matches!(r, Err(KernelError::ShapeMismatch { op: o, .. }) if o == op)
}

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
            prop_assert!(params.output_shape(cfg.shape).is_err());
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
    let bad_max = [
        MaxPool2dParams::new((0, 2)),                     // zero kernel
        MaxPool2dParams::square(2).with_stride((0, 1)),   // zero stride
        MaxPool2dParams::square(2).with_dilation((1, 0)), // zero dilation
        MaxPool2dParams::square(3).with_padding((2, 0)),  // padding > kernel / 2
        MaxPool2dParams::square(5),                       // kernel larger than the input
        MaxPool2dParams::square(3).with_dilation((2, 2)), // dilated kernel spans 5 > 4
    ];
    for p in bad_max {
        assert!(is_shape_error(max_pool2d(&x, s, &p), "max_pool2d"), "{p:?}");
        assert!(p.output_shape(s).is_err(), "{p:?}");
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
    assert!(max_pool2d_backward(&[0.0; 3], &[0; 4], s, &ok).is_err());
    assert!(max_pool2d_backward(&[0.0; 4], &[0; 3], s, &ok).is_err());
    assert!(max_pool2d_backward(&[0.0; 4], &[0, 1, 2, 16], s, &ok).is_err());
    assert!(max_pool2d_backward(&[0.0; 4], &[0, 1, 2, -2], s, &ok).is_err());
    // Element count overflow.
    assert!(ok.output_shape([usize::MAX, 2, 2, 2]).is_err());

    let bad_avg = [
        AvgPool2dParams::new((2, 0)),
        AvgPool2dParams::square(2).with_stride((1, 0)),
        AvgPool2dParams::square(2).with_padding((0, 2)),
        AvgPool2dParams::square(2).with_divisor_override(Some(0)),
        AvgPool2dParams::new((6, 1)),
    ];
    for p in bad_avg {
        assert!(is_shape_error(avg_pool2d(&x, s, &p), "avg_pool2d"), "{p:?}");
        assert!(avg_pool2d_backward(&[0.0; 4], s, &p).is_err(), "{p:?}");
    }
    let ok = AvgPool2dParams::square(2);
    assert!(is_shape_error(avg_pool2d(&x[..3], s, &ok), "avg_pool2d"));
    assert!(avg_pool2d_backward(&[0.0; 5], s, &ok).is_err());

    assert!(is_shape_error(
        adaptive_avg_pool2d(&x, s, (0, 2)),
        "adaptive_avg_pool2d"
    ));
    assert!(adaptive_avg_pool2d(&x[..2], s, (2, 2)).is_err());
    assert!(adaptive_avg_pool2d(&[], [1, 1, 4, 0], (2, 2)).is_err());
    assert!(adaptive_avg_pool2d_backward(&[0.0; 3], s, (2, 2)).is_err());
    assert!(global_avg_pool2d(&x[..15], s).is_err());
    assert!(global_avg_pool2d_backward(&[0.0; 2], s).is_err());
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
