//! Helpers, f64 reference implementations written from PyTorch's documented semantics, and
//! proptest strategies for the pooling tests.

use proptest::prelude::*;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use ventral_kernels::KernelError;
use ventral_kernels::pool::{AvgPool2dParams, MaxPool2dParams};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

pub use super::common::{bits, pool};

pub fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `len` distinct values spaced `2 / len` apart in `[-1, 1)`, in random order, so no window
/// has a tie and a perturbation of 1e-6 never changes an argmax.
pub fn distinct_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<u64> = (0..len).map(|_| rng.random_range(0..u64::MAX)).collect();
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by_key(|&i| keys[i]);
    order
        .into_iter()
        .map(|r| (r as f32 - len as f32 / 2.0) * (2.0 / len as f32))
        .collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// `|got - want| <= atol + rtol |want|` elementwise (infinities must match exactly).
pub fn assert_close(got: &[f32], want: &[f64], atol: f64, rtol: f64, what: &str) {
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
pub fn numeric_grad(x: &[f64], loss: impl Fn(&[f64]) -> f64) -> Vec<f64> {
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
pub fn dot(dy: &[f64], y: &[f64]) -> f64 {
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
pub struct Cfg {
    pub shape: [usize; 4],
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

impl Cfg {
    pub fn max_params(&self) -> MaxPool2dParams {
        MaxPool2dParams::new(self.kernel)
            .with_stride(self.stride)
            .with_padding(self.padding)
            .with_dilation(self.dilation)
            .with_ceil_mode(self.ceil_mode)
    }

    pub fn avg_params(&self) -> AvgPool2dParams {
        AvgPool2dParams::new(self.kernel)
            .with_stride(self.stride)
            .with_padding(self.padding)
            .with_ceil_mode(self.ceil_mode)
            .with_count_include_pad(self.count_include_pad)
    }

    /// The same configuration without dilation (avg pooling has none).
    pub fn undilated(self) -> Cfg {
        Cfg {
            dilation: (1, 1),
            ..self
        }
    }
}

/// Output length from the nn.MaxPool2d docs: `floor_or_ceil((L + 2p - d(k-1) - 1)/s + 1)`,
/// dropping the last window in ceil mode if it would start past the input and left padding.
/// `None` where PyTorch raises (bad parameters, padding > k/2, empty output).
pub fn ref_len(len: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Option<usize> {
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

pub fn ref_shape(cfg: &Cfg) -> Option<[usize; 4]> {
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
pub fn ref_max(x: &[f64], cfg: &Cfg) -> (Vec<f64>, Vec<i64>) {
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
pub fn ref_max_backward(dy: &[f64], idx: &[i64], cfg: &Cfg) -> Vec<f64> {
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
pub fn ref_avg_windows(cfg: &Cfg) -> Vec<(usize, Vec<usize>, f64)> {
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

pub fn ref_avg(x: &[f64], cfg: &Cfg) -> Vec<f64> {
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

pub fn ref_avg_backward(dy: &[f64], cfg: &Cfg) -> Vec<f64> {
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
pub fn ref_adaptive_windows(shape: [usize; 4], out: (usize, usize)) -> Vec<Vec<usize>> {
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

pub fn ref_adaptive(x: &[f64], shape: [usize; 4], out: (usize, usize)) -> Vec<f64> {
    ref_adaptive_windows(shape, out)
        .iter()
        .map(|cells| cells.iter().map(|&i| x[i]).sum::<f64>() / cells.len() as f64)
        .collect()
}

pub fn ref_adaptive_backward(dy: &[f64], shape: [usize; 4], out: (usize, usize)) -> Vec<f64> {
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

pub fn side() -> impl Strategy<Value = usize> + Clone {
    prop::sample::select(vec![1usize, 2, 3, 4, 5, 7, 8, 12, 17])
}

pub fn small_side() -> impl Strategy<Value = usize> + Clone {
    prop::sample::select(vec![1usize, 2, 3, 4, 5, 7, 9])
}

/// A configuration over an input with sides drawn from `side`; padding is kept within the
/// legal `k / 2` (illegal padding has its own test), but the output may be empty.
pub fn cfg(side: impl Strategy<Value = usize> + Clone) -> impl Strategy<Value = Cfg> {
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

pub fn is_shape_error<T>(r: Result<T, KernelError>, op: &str) -> bool {
    matches!(r, Err(KernelError::ShapeMismatch { op: o, .. }) if o == op)
}
