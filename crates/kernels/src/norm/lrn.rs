//! Local response normalisation across channels (`torch.nn.LocalResponseNorm`), forward and
//! backward.
//!
//! With `n = size`, channel `c` of each sample and position is divided by a power of the
//! mean square of its channel neighbourhood:
//!
//! ```text
//! s_c = k + alpha * (Σ_{c' ∈ W(c)} a_{c'}²) / n       y_c = a_c / s_c^beta
//! W(c) = [c - n/2, c + (n-1)/2] ∩ [0, C)
//! ```
//!
//! which is PyTorch's construction: square, zero-pad the channel axis by `n/2` before and
//! `(n-1)/2` after, average-pool `n` channels with stride 1 (padding counted), scale, shift,
//! raise to `beta`, divide. The derivative, with `t_c = dy_c a_c / (s_c^beta s_c)`:
//!
//! ```text
//! dx_j = dy_j / s_j^beta - (2 alpha beta / n) a_j Σ_{c : j ∈ W(c)} t_c
//! {c : j ∈ W(c)} = [j - (n-1)/2, j + n/2] ∩ [0, C)
//! ```

use super::{Planes, mismatch};
use crate::error::Result;

/// Hyper-parameters of [`local_response_norm`], named as in `torch.nn.LocalResponseNorm`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrnParams {
    /// Number of neighbouring channels summed over (at least 1).
    pub size: usize,
    /// Multiplicative factor of the mean square.
    pub alpha: f32,
    /// Exponent.
    pub beta: f32,
    /// Additive constant.
    pub k: f32,
}

impl LrnParams {
    /// PyTorch's defaults for a window of `size` channels: `alpha = 1e-4`, `beta = 0.75`,
    /// `k = 1`.
    pub fn new(size: usize) -> Self {
        Self {
            size,
            alpha: 1e-4,
            beta: 0.75,
            k: 1.0,
        }
    }

    /// The same parameters with another `alpha`.
    pub fn with_alpha(self, alpha: f32) -> Self {
        Self { alpha, ..self }
    }

    /// The same parameters with another `beta`.
    pub fn with_beta(self, beta: f32) -> Self {
        Self { beta, ..self }
    }

    /// The same parameters with another `k`.
    pub fn with_k(self, k: f32) -> Self {
        Self { k, ..self }
    }

    /// Channels `[c - size/2, c + (size-1)/2] ∩ [0, channels)` summed for output channel `c`.
    fn window(&self, c: usize, channels: usize) -> std::ops::Range<usize> {
        c.saturating_sub(self.size / 2)..(c + (self.size - 1) / 2 + 1).min(channels)
    }

    /// Output channels `[j - (size-1)/2, j + size/2] ∩ [0, channels)` whose windows hold `j`.
    fn reverse_window(&self, j: usize, channels: usize) -> std::ops::Range<usize> {
        j.saturating_sub((self.size - 1) / 2)..(j + self.size / 2 + 1).min(channels)
    }
}

/// Validates the shapes and parameters shared by forward and backward.
fn planes(op: &'static str, shape: &[usize], len: usize, params: &LrnParams) -> Result<Planes> {
    if params.size == 0 {
        return Err(mismatch(op, "size must be at least 1".to_string()));
    }
    Planes::new(op, shape, "x", len)
}

/// `out = s` (the denominator base `k + alpha * mean square`) for plane `p`, summing squares
/// of the window's channels in channel order.
fn base(pl: Planes, params: &LrnParams, x: &[f32], p: usize, out: &mut [f32]) {
    let (n, c) = (p / pl.c, p % pl.c);
    out.fill(0.0);
    for cc in params.window(c, pl.c) {
        for (o, &v) in out.iter_mut().zip(pl.plane(x, n * pl.c + cc)) {
            *o += v * v;
        }
    }
    let size = params.size as f32;
    for o in out.iter_mut() {
        *o = *o / size * params.alpha + params.k;
    }
}

/// Local response normalisation of a `[N, C, *]` tensor (rank ≥ 2) across channels, as
/// `torch.nn.LocalResponseNorm(size, alpha, beta, k)`: with `n = size`,
///
/// ```text
/// y_c = a_c / (k + alpha / n * Σ_{c' ∈ W(c)} a_{c'}²)^beta,   W(c) = [c - n/2, c + (n-1)/2] ∩ [0, C)
/// ```
///
/// (PyTorch zero-pads the channels by `n/2` before and `(n-1)/2` after, so even windows lean
/// towards lower channels). Squares are summed in f32, in channel order.
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x.len()` does not match `shape`, the rank is
/// below 2, or `size` is 0.
pub fn local_response_norm(x: &[f32], shape: &[usize], params: &LrnParams) -> Result<Vec<f32>> {
    const OP: &str = "local_response_norm";
    let pl = planes(OP, shape, x.len(), params)?;
    let mut y = vec![0.0f32; x.len()];
    pl.fill(&mut y, |p, yp| {
        base(pl, params, x, p, yp);
        for (o, &v) in yp.iter_mut().zip(pl.plane(x, p)) {
            *o = v / o.powf(params.beta);
        }
    });
    Ok(y)
}

/// Gradient of [`local_response_norm`] with respect to its input, given the output gradient
/// `dy` and the forward input `x`. With `s_c` the base raised to `beta` in the forward pass
/// and `t_c = dy_c a_c / (s_c^beta s_c)`:
///
/// ```text
/// dx_j = dy_j / s_j^beta - (2 alpha beta / n) a_j Σ_{c : j ∈ W(c)} t_c
/// ```
///
/// # Errors
/// [`crate::KernelError::ShapeMismatch`] if `x.len()` does not match `shape`, `dy` differs
/// from `x` in length, the rank is below 2, or `size` is 0.
pub fn local_response_norm_backward(
    dy: &[f32],
    x: &[f32],
    shape: &[usize],
    params: &LrnParams,
) -> Result<Vec<f32>> {
    const OP: &str = "local_response_norm_backward";
    let pl = planes(OP, shape, x.len(), params)?;
    Planes::new(OP, shape, "dy", dy.len())?;
    // Pass 1, per plane: u = s^beta (in `u`) and t = dy a / (u s) (in `t`).
    let mut u = vec![0.0f32; x.len()];
    let mut t = vec![0.0f32; x.len()];
    pl.fill2(&mut u, &mut t, |p, up, tp| {
        base(pl, params, x, p, up);
        let (gp, xp) = (pl.plane(dy, p), pl.plane(x, p));
        for (((uv, tv), &g), &a) in up.iter_mut().zip(tp.iter_mut()).zip(gp).zip(xp) {
            let s = *uv;
            *uv = s.powf(params.beta);
            *tv = g * a / (*uv * s);
        }
    });
    // Pass 2, per plane j: dx_j = dy_j / u_j - coef a_j Σ_{c ∋ j} t_c, summed in channel order.
    let coef = 2.0 * params.alpha * params.beta / params.size as f32;
    let mut dx = vec![0.0f32; x.len()];
    pl.fill(&mut dx, |p, dxp| {
        let (n, j) = (p / pl.c, p % pl.c);
        dxp.fill(0.0);
        for c in params.reverse_window(j, pl.c) {
            for (o, &tv) in dxp.iter_mut().zip(pl.plane(&t, n * pl.c + c)) {
                *o += tv;
            }
        }
        let (up, gp, xp) = (pl.plane(&u, p), pl.plane(dy, p), pl.plane(x, p));
        for (((o, &uv), &g), &a) in dxp.iter_mut().zip(up).zip(gp).zip(xp) {
            *o = g / uv - coef * a * *o;
        }
    });
    Ok(dx)
}
