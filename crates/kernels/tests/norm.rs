//! Batch normalisation and local response normalisation against plain f64 references written
//! from the PyTorch documentation (BatchNorm2d, LocalResponseNorm), over random shapes of rank
//! 2 to 4; gradients against a reference backward and central differences of the f64
//! reference forward; running statistics against the update formula; hand-derived cases;
//! invalid arguments; 1 vs 2 threads bit-identical.

use std::sync::OnceLock;

use proptest::prelude::*;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use ventral_kernels::KernelError;
use ventral_kernels::norm::{
    BatchNormParams, LrnParams, RunningStats, batch_norm_backward_eval, batch_norm_backward_train,
    batch_norm_eval, batch_norm_train, local_response_norm, local_response_norm_backward,
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

fn random_vec(len: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The first element where `|got - want| > atol + rtol |want|`, described; `None` if all
/// are close.
fn mismatch(got: &[f32], want: &[f64], atol: f64, rtol: f64) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("length {} vs {}", got.len(), want.len()));
    }
    got.iter()
        .zip(want)
        .enumerate()
        .find(|&(_, (&g, &w))| (f64::from(g) - w).abs() > atol + rtol * w.abs())
        .map(|(i, (g, w))| format!("element {i}: got {g}, want {w}"))
}

fn assert_close(got: &[f32], want: &[f64], atol: f64, rtol: f64, what: &str) {
    if let Some(m) = mismatch(got, want, atol, rtol) {
        panic!("{what}: {m}");
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

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Gradients from the f32 kernels are compared with f64 truth at these tolerances: the
/// kernels round every intermediate to f32 (relative 6e-8), and a few dozen roundings plus
/// the cancellation in `dy - mean(dy) - ...` stay well inside them.
const GRAD_ATOL: f64 = 1e-4;
const GRAD_RTOL: f64 = 1e-3;

// ---------------------------------------------------------------------------------------
// Batch-norm reference (torch.nn.BatchNorm2d docs): per channel over N and all positions,
// y = (x - E[x]) / sqrt(Var[x] + eps) * w + b with the biased variance.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Bn {
    n: usize,
    c: usize,
    inner: usize,
}

impl Bn {
    fn new(shape: Vec<usize>) -> Self {
        let inner = shape[2..].iter().product();
        Self {
            n: shape[0],
            c: shape[1],
            inner,
        }
    }

    fn numel(&self) -> usize {
        self.n * self.c * self.inner
    }

    /// Indices of channel `c`'s elements.
    fn channel(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.n)
            .flat_map(move |n| (0..self.inner).map(move |i| (n * self.c + c) * self.inner + i))
    }

    /// `(mean, biased variance)` per channel.
    fn stats(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let m = (self.n * self.inner) as f64;
        let mean: Vec<f64> = (0..self.c)
            .map(|c| self.channel(c).map(|i| x[i]).sum::<f64>() / m)
            .collect();
        let var = (0..self.c)
            .map(|c| {
                self.channel(c)
                    .map(|i| (x[i] - mean[c]).powi(2))
                    .sum::<f64>()
                    / m
            })
            .collect();
        (mean, var)
    }

    /// `(x - mean) / sqrt(var + eps) * w + b` per channel.
    fn normalise(
        &self,
        x: &[f64],
        mean: &[f64],
        var: &[f64],
        w: &[f64],
        b: &[f64],
        eps: f64,
    ) -> Vec<f64> {
        let mut y = vec![0.0; x.len()];
        for c in 0..self.c {
            for i in self.channel(c) {
                y[i] = (x[i] - mean[c]) / (var[c] + eps).sqrt() * w[c] + b[c];
            }
        }
        y
    }

    fn train(&self, x: &[f64], w: &[f64], b: &[f64], eps: f64) -> Vec<f64> {
        let (mean, var) = self.stats(x);
        self.normalise(x, &mean, &var, w, b, eps)
    }

    /// The textbook training backward (Ioffe & Szegedy 2015, eq. after Alg. 1), in f64:
    /// dx̂ = dy w; dx = r/m (m dx̂ - Σdx̂ - x̂ Σ dx̂ x̂); dw = Σ dy x̂; db = Σ dy.
    fn train_backward(
        &self,
        dy: &[f64],
        x: &[f64],
        w: &[f64],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mean, var) = self.stats(x);
        let m = (self.n * self.inner) as f64;
        let mut dx = vec![0.0; x.len()];
        let (mut dw, mut db) = (vec![0.0; self.c], vec![0.0; self.c]);
        for c in 0..self.c {
            let r = 1.0 / (var[c] + eps).sqrt();
            let xhat = |i: usize| (x[i] - mean[c]) * r;
            let sum_dxhat: f64 = self.channel(c).map(|i| dy[i] * w[c]).sum();
            let sum_dxhat_xhat: f64 = self.channel(c).map(|i| dy[i] * w[c] * xhat(i)).sum();
            for i in self.channel(c) {
                dx[i] = r / m * (m * dy[i] * w[c] - sum_dxhat - xhat(i) * sum_dxhat_xhat);
            }
            dw[c] = self.channel(c).map(|i| dy[i] * xhat(i)).sum();
            db[c] = self.channel(c).map(|i| dy[i]).sum();
        }
        (dx, dw, db)
    }
}

fn bn_shape() -> impl Strategy<Value = Vec<usize>> {
    let extra = prop::sample::select(vec![1usize, 2, 3, 5, 7]);
    (1usize..=4, 1usize..=4, prop::collection::vec(extra, 0..=2)).prop_map(|(n, c, rest)| {
        let mut s = vec![n, c];
        s.extend(rest);
        s
    })
}

// ---------------------------------------------------------------------------------------
// LRN reference (torch.nn.LocalResponseNorm docs):
// b_c = a_c (k + alpha/n Σ_{c'=max(0,c-n/2)}^{min(N-1,c+n/2)} a_{c'}^2)^-beta, with PyTorch's
// padding (n/2 before, (n-1)/2 after) deciding the window of even sizes.
// ---------------------------------------------------------------------------------------

fn ref_lrn(x: &[f64], shape: &[usize], p: &LrnParams) -> Vec<f64> {
    let (n, c) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let (alpha, beta, k) = (f64::from(p.alpha), f64::from(p.beta), f64::from(p.k));
    let mut y = vec![0.0; x.len()];
    for s in 0..n {
        for ch in 0..c {
            for i in 0..inner {
                let mut sum = 0.0;
                for off in 0..p.size {
                    // padded channel index ch + off, minus the front padding size/2
                    let cc = (ch + off) as i64 - (p.size / 2) as i64;
                    if cc >= 0 && cc < c as i64 {
                        let v = x[(s * c + cc as usize) * inner + i];
                        sum += v * v;
                    }
                }
                let at = (s * c + ch) * inner + i;
                y[at] = x[at] / (k + alpha * sum / p.size as f64).powf(beta);
            }
        }
    }
    y
}

fn lrn_params() -> impl Strategy<Value = LrnParams> {
    (1usize..=6, 0.05f32..2.0, 0.5f32..1.0, 0.5f32..2.0).prop_map(|(size, alpha, beta, k)| {
        LrnParams::new(size)
            .with_alpha(alpha)
            .with_beta(beta)
            .with_k(k)
    })
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Training forward, saved statistics and running-stat update against the reference and
    /// PyTorch's update formula; training backward against the textbook backward and against
    /// central differences of the reference forward (in x, weight and bias).
    #[test]
    fn batch_norm_train_matches_reference(
        shape in bn_shape(),
        affine in any::<bool>(),
        momentum in 0.0f32..1.0,
        seed in any::<u64>(),
    ) {
        let bn = Bn::new(shape.clone());
        let x = random_vec(bn.numel(), -2.0, 3.0, seed);
        let (w, b) = if affine {
            (random_vec(bn.c, 0.5, 2.0, seed ^ 1), random_vec(bn.c, -1.0, 1.0, seed ^ 2))
        } else {
            (vec![1.0; bn.c], vec![0.0; bn.c])
        };
        let (wo, bo) = if affine { (Some(&w[..]), Some(&b[..])) } else { (None, None) };
        let (rm0, rv0) = (random_vec(bn.c, -1.0, 1.0, seed ^ 3), random_vec(bn.c, 0.5, 2.0, seed ^ 4));
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        let params = BatchNormParams::new(1e-5, momentum);
        let running = RunningStats { mean: &mut rm, var: &mut rv };
        let result = batch_norm_train(&x, &shape, wo, bo, Some(running), params);
        let m = bn.n * bn.inner;
        if m < 2 {
            // PyTorch: "Expected more than 1 value per channel when training".
            let is_shape_error = matches!(result, Err(KernelError::ShapeMismatch { .. }));
            prop_assert!(is_shape_error);
            return Ok(());
        }
        let out = result.unwrap();
        let (x64, w64, b64) = (to_f64(&x), to_f64(&w), to_f64(&b));
        let eps = f64::from(params.eps);
        let (mean, var) = bn.stats(&x64);
        assert_close(&out.y, &bn.train(&x64, &w64, &b64, eps), 1e-5, 1e-5, "y");
        assert_close(&out.save_mean, &mean, 1e-6, 1e-6, "save_mean");
        let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        assert_close(&out.save_invstd, &invstd, 0.0, 1e-6, "save_invstd");
        // running = (1 - momentum) running + momentum stat, with the unbiased variance
        // var * m / (m - 1) (torch.nn.BatchNorm2d docs).
        let mo = f64::from(momentum);
        let want_rm: Vec<f64> = (0..bn.c).map(|c| (1.0 - mo) * f64::from(rm0[c]) + mo * mean[c]).collect();
        let want_rv: Vec<f64> = (0..bn.c)
            .map(|c| (1.0 - mo) * f64::from(rv0[c]) + mo * var[c] * m as f64 / (m as f64 - 1.0))
            .collect();
        assert_close(&rm, &want_rm, 1e-6, 1e-6, "running_mean");
        assert_close(&rv, &want_rv, 1e-6, 1e-6, "running_var");

        let dy = random_vec(bn.numel(), -1.0, 1.0, seed ^ 5);
        let g = batch_norm_backward_train(&dy, &x, &shape, wo, &out.save_mean, &out.save_invstd).unwrap();
        let dy64 = to_f64(&dy);
        let (rdx, rdw, rdb) = bn.train_backward(&dy64, &x64, &w64, eps);
        // dx subtracts terms of the size of dy * invstd that cancel where a channel's values
        // nearly coincide (two values 0.01 apart, with eps 1e-5: invstd about 170), so its
        // f32 error grows with invstd; the others are not amplified.
        let dx_atol = GRAD_ATOL * invstd.iter().fold(1.0f64, |most, &s| most.max(s));
        assert_close(&g.dx, &rdx, dx_atol, GRAD_RTOL, "dx vs reference");
        assert_close(&g.dweight, &rdw, GRAD_ATOL, GRAD_RTOL, "dweight vs reference");
        assert_close(&g.dbias, &rdb, GRAD_ATOL, GRAD_RTOL, "dbias vs reference");
        let num_dx = numeric_grad(&x64, |x| dot(&dy64, &bn.train(x, &w64, &b64, eps)));
        let num_dw = numeric_grad(&w64, |w| dot(&dy64, &bn.train(&x64, w, &b64, eps)));
        let num_db = numeric_grad(&b64, |b| dot(&dy64, &bn.train(&x64, &w64, b, eps)));
        assert_close(&g.dx, &num_dx, dx_atol, GRAD_RTOL, "dx gradcheck");
        assert_close(&g.dweight, &num_dw, GRAD_ATOL, GRAD_RTOL, "dweight gradcheck");
        assert_close(&g.dbias, &num_db, GRAD_ATOL, GRAD_RTOL, "dbias gradcheck");
    }

    /// Inference forward (running statistics) and its backward against the reference and
    /// central differences.
    #[test]
    fn batch_norm_eval_matches_reference(shape in bn_shape(), affine in any::<bool>(), seed in any::<u64>()) {
        let bn = Bn::new(shape.clone());
        let x = random_vec(bn.numel(), -2.0, 3.0, seed);
        let (w, b) = if affine {
            (random_vec(bn.c, 0.5, 2.0, seed ^ 1), random_vec(bn.c, -1.0, 1.0, seed ^ 2))
        } else {
            (vec![1.0; bn.c], vec![0.0; bn.c])
        };
        let (wo, bo) = if affine { (Some(&w[..]), Some(&b[..])) } else { (None, None) };
        let (rm, rv) = (random_vec(bn.c, -1.0, 1.0, seed ^ 3), random_vec(bn.c, 0.5, 2.0, seed ^ 4));
        let eps = 1e-3f32;
        let y = batch_norm_eval(&x, &shape, wo, bo, &rm, &rv, eps).unwrap();
        let (x64, w64, b64, rm64, rv64) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&rm), to_f64(&rv));
        let e = f64::from(eps);
        let fwd = |x: &[f64], w: &[f64], b: &[f64]| bn.normalise(x, &rm64, &rv64, w, b, e);
        assert_close(&y, &fwd(&x64, &w64, &b64), 1e-5, 1e-5, "eval y");

        let dy = random_vec(bn.numel(), -1.0, 1.0, seed ^ 5);
        let g = batch_norm_backward_eval(&dy, &x, &shape, wo, &rm, &rv, eps).unwrap();
        let dy64 = to_f64(&dy);
        let num_dx = numeric_grad(&x64, |x| dot(&dy64, &fwd(x, &w64, &b64)));
        let num_dw = numeric_grad(&w64, |w| dot(&dy64, &fwd(&x64, w, &b64)));
        let num_db = numeric_grad(&b64, |b| dot(&dy64, &fwd(&x64, &w64, b)));
        assert_close(&g.dx, &num_dx, GRAD_ATOL, GRAD_RTOL, "eval dx gradcheck");
        assert_close(&g.dweight, &num_dw, GRAD_ATOL, GRAD_RTOL, "eval dweight gradcheck");
        assert_close(&g.dbias, &num_db, GRAD_ATOL, GRAD_RTOL, "eval dbias gradcheck");
    }

    /// LRN forward against the reference, and its backward against central differences of
    /// the reference forward, over odd and even window sizes (even sizes are asymmetric).
    #[test]
    fn lrn_matches_reference_and_central_differences(
        shape in bn_shape(),
        params in lrn_params(),
        seed in any::<u64>(),
    ) {
        let numel: usize = shape.iter().product();
        let x = random_vec(numel, -2.0, 2.0, seed);
        let y = local_response_norm(&x, &shape, &params).unwrap();
        let x64 = to_f64(&x);
        assert_close(&y, &ref_lrn(&x64, &shape, &params), 1e-6, 1e-5, "lrn y");

        let dy = random_vec(numel, -1.0, 1.0, seed ^ 1);
        let dx = local_response_norm_backward(&dy, &x, &shape, &params).unwrap();
        let dy64 = to_f64(&dy);
        let num = numeric_grad(&x64, |x| dot(&dy64, &ref_lrn(x, &shape, &params)));
        assert_close(&dx, &num, GRAD_ATOL, GRAD_RTOL, "lrn gradcheck");
    }
}

/// The gradient checker must reject a wrong backward: LRN's gradient computed with beta off
/// by 0.1 (so only the cross-channel term and the power change) is flagged.
#[test]
fn gradient_checker_rejects_a_wrong_backward() {
    let shape = [2, 5, 3];
    let params = LrnParams::new(3)
        .with_alpha(1.0)
        .with_beta(0.75)
        .with_k(1.0);
    let x = random_vec(30, -2.0, 2.0, 11);
    let dy = random_vec(30, -1.0, 1.0, 12);
    let dy64 = to_f64(&dy);
    let num = numeric_grad(&to_f64(&x), |x| dot(&dy64, &ref_lrn(x, &shape, &params)));
    let right = local_response_norm_backward(&dy, &x, &shape, &params).unwrap();
    assert!(mismatch(&right, &num, GRAD_ATOL, GRAD_RTOL).is_none());
    let wrong = local_response_norm_backward(&dy, &x, &shape, &params.with_beta(0.85)).unwrap();
    assert!(mismatch(&wrong, &num, GRAD_ATOL, GRAD_RTOL).is_some());
}

// ---------------------------------------------------------------------------------------
// Hand-derived cases
// ---------------------------------------------------------------------------------------

#[test]
fn batch_norm_hand_case() {
    // Shape [2, 2, 1, 2]; planes (n, c): (0,0) = [1, 2], (0,1) = [10, 10], (1,0) = [3, 4],
    // (1,1) = [10, 14].
    // Channel 0 = {1, 2, 3, 4}: mean 2.5, biased var (2.25+0.25+0.25+2.25)/4 = 1.25,
    //   unbiased 5/3.
    // Channel 1 = {10, 10, 10, 14}: mean 11, squared deviations 1+1+1+9 = 12: biased var 3,
    //   unbiased 4.
    // eps = 0, weight [2, 1], bias [0, 1]: channel 1 gives (x - 11)/sqrt(3) + 1.
    // Running stats from mean [0, 0], var [1, 1] with momentum 0.1:
    //   mean = 0.1 * [2.5, 11] = [0.25, 1.1]; var = 0.9 + 0.1 * [5/3, 4] = [1.0666…, 1.3].
    let x = [1.0, 2.0, 10.0, 10.0, 3.0, 4.0, 10.0, 14.0];
    let (mut rm, mut rv) = ([0.0f32; 2], [1.0f32; 2]);
    let out = batch_norm_train(
        &x,
        &[2, 2, 1, 2],
        Some(&[2.0, 1.0]),
        Some(&[0.0, 1.0]),
        Some(RunningStats {
            mean: &mut rm,
            var: &mut rv,
        }),
        BatchNormParams::new(0.0, 0.1),
    )
    .unwrap();
    let s = 1.25f64.sqrt();
    let t = 3.0f64.sqrt();
    let want = [
        2.0 * -1.5 / s,
        2.0 * -0.5 / s,
        1.0 - 1.0 / t,
        1.0 - 1.0 / t,
        2.0 * 0.5 / s,
        2.0 * 1.5 / s,
        1.0 - 1.0 / t,
        1.0 + 3.0 / t,
    ];
    assert_close(&out.y, &want, 1e-6, 1e-6, "y");
    assert_close(&out.save_mean, &[2.5, 11.0], 0.0, 0.0, "mean");
    assert_close(&out.save_invstd, &[1.0 / s, 1.0 / t], 0.0, 1e-7, "invstd");
    assert_close(&rm, &[0.25, 1.1], 0.0, 1e-7, "running mean");
    assert_close(&rv, &[0.9 + 0.5 / 3.0, 1.3], 0.0, 1e-7, "running var");

    // Eval: (3 - 1) / sqrt(3 + 1) * 2 + 0.5 = 2.5.
    let y = batch_norm_eval(
        &[3.0],
        &[1, 1],
        Some(&[2.0]),
        Some(&[0.5]),
        &[1.0],
        &[3.0],
        1.0,
    )
    .unwrap();
    assert_eq!(y, [2.5]);
    // Its backward: dx = dy * 2 / 2 = dy; dweight = dy * (3 - 1) / 2; dbias = dy.
    let g = batch_norm_backward_eval(&[4.0], &[3.0], &[1, 1], Some(&[2.0]), &[1.0], &[3.0], 1.0)
        .unwrap();
    assert_eq!(
        (g.dx, g.dweight, g.dbias),
        (vec![4.0], vec![4.0], vec![4.0])
    );
}

#[test]
fn batch_norm_backward_of_its_own_output_is_zero() {
    // Training-mode batch norm is invariant to shifting and scaling a channel, so with eps = 0
    // the loss ||y||²/2 is the constant m/2 and its gradient dy = y must give dx = 0; by the
    // formula, dx = r (y - mean(y) - x̂ · mean(y x̂)) = r (y - 0 - y · 1) = 0.
    let x = [1.0, 5.0, 2.0, 8.0];
    let out = batch_norm_train(
        &x,
        &[4, 1],
        None,
        None,
        None,
        BatchNormParams::new(0.0, 0.1),
    )
    .unwrap();
    let g = batch_norm_backward_train(&out.y, &x, &[4, 1], None, &out.save_mean, &out.save_invstd)
        .unwrap();
    assert_close(&g.dx, &[0.0; 4], 1e-6, 0.0, "dx");
    // dbias = Σ y = 0, dweight = Σ y · x̂ = Σ x̂² = m = 4.
    assert_close(&g.dbias, &[0.0], 1e-6, 0.0, "dbias");
    assert_close(&g.dweight, &[4.0], 0.0, 1e-6, "dweight");
}

#[test]
fn lrn_hand_cases() {
    // size 1, alpha 1, beta 1, k 1: y = a / (1 + a²); a = 2 gives 0.4.
    let p = LrnParams::new(1).with_alpha(1.0).with_beta(1.0).with_k(1.0);
    assert_eq!(local_response_norm(&[2.0], &[1, 1], &p).unwrap(), [0.4]);
    // Channels [1, 2, 3] at one position, beta 1, k 0.
    // size 3, alpha 3 (alpha/size = 1): windows [c-1, c+1]: s = 1+4, 1+4+9, 4+9:
    //   y = [1/5, 2/14, 3/13].
    let x = [1.0, 2.0, 3.0];
    let p = LrnParams::new(3).with_alpha(3.0).with_beta(1.0).with_k(0.0);
    assert_close(
        &local_response_norm(&x, &[1, 3, 1], &p).unwrap(),
        &[0.2, 2.0 / 14.0, 3.0 / 13.0],
        0.0,
        1e-7,
        "size 3",
    );
    // size 2, alpha 2: PyTorch pads 1 channel before and 0 after, so the window is [c-1, c]:
    //   s = 1, 1+4, 4+9: y = [1, 2/5, 3/13].
    let p = LrnParams::new(2).with_alpha(2.0).with_beta(1.0).with_k(0.0);
    assert_close(
        &local_response_norm(&x, &[1, 3], &p).unwrap(),
        &[1.0, 0.4, 3.0 / 13.0],
        0.0,
        1e-7,
        "size 2",
    );
}

// ---------------------------------------------------------------------------------------
// Invalid arguments
// ---------------------------------------------------------------------------------------

fn e<T>(r: Result<T, KernelError>, op: &str) -> bool {
    matches!(r, Err(KernelError::ShapeMismatch { op: o, .. }) if o == op)
}

#[test]
fn invalid_arguments_are_errors() {
    let x = [0.0f32; 12];
    let s = [2, 3, 2];
    let p = BatchNormParams::default();
    assert!(e(
        batch_norm_train(&x, &[12], None, None, None, p),
        "batch_norm_train"
    ));
    assert!(e(
        batch_norm_train(&x[..11], &s, None, None, None, p),
        "batch_norm_train"
    ));
    assert!(e(
        batch_norm_train(&x, &s, Some(&[1.0; 2]), None, None, p),
        "batch_norm_train"
    ));
    assert!(e(
        batch_norm_train(&x, &s, None, Some(&[1.0; 4]), None, p),
        "batch_norm_train"
    ));
    let (mut rm, mut rv) = ([0.0f32; 2], [1.0f32; 3]);
    let running = RunningStats {
        mean: &mut rm,
        var: &mut rv,
    };
    assert!(e(
        batch_norm_train(&x, &s, None, None, Some(running), p),
        "batch_norm_train"
    ));
    // One value per channel: the unbiased variance is undefined.
    assert!(e(
        batch_norm_train(&x[..3], &[1, 3], None, None, None, p),
        "batch_norm_train"
    ));
    assert!(e(
        batch_norm_train(&x[..3], &[1, 3, 1, 1], None, None, None, p),
        "batch_norm_train"
    ));
    // Overflowing shape.
    assert!(e(
        batch_norm_train(&x, &[usize::MAX, 2, 2], None, None, None, p),
        "batch_norm_train"
    ));

    assert!(e(
        batch_norm_eval(&x, &s, None, None, &[0.0; 3], &[1.0; 2], 1e-5),
        "batch_norm_eval"
    ));
    assert!(e(
        batch_norm_eval(&x, &[3, 4, 2], None, None, &[0.0; 4], &[1.0; 4], 1e-5),
        "batch_norm_eval"
    ));

    let m3 = [0.0f32; 3];
    assert!(e(
        batch_norm_backward_train(&x[..11], &x, &s, None, &m3, &m3),
        "batch_norm_backward_train"
    ));
    assert!(e(
        batch_norm_backward_train(&x, &x, &s, None, &m3[..2], &m3),
        "batch_norm_backward_train"
    ));
    assert!(e(
        batch_norm_backward_train(&x, &x, &s, Some(&[1.0]), &m3, &m3),
        "batch_norm_backward_train"
    ));
    assert!(e(
        batch_norm_backward_eval(&x, &x, &s, None, &m3, &m3[..1], 1e-5),
        "batch_norm_backward_eval"
    ));

    let lp = LrnParams::new(0);
    assert!(e(local_response_norm(&x, &s, &lp), "local_response_norm"));
    let lp = LrnParams::new(3);
    assert!(e(
        local_response_norm(&x, &[12], &lp),
        "local_response_norm"
    ));
    assert!(e(
        local_response_norm(&x[..5], &s, &lp),
        "local_response_norm"
    ));
    assert!(e(
        local_response_norm_backward(&x[..5], &x, &s, &lp),
        "local_response_norm_backward"
    ));
}

// ---------------------------------------------------------------------------------------
// Determinism
// ---------------------------------------------------------------------------------------

#[test]
fn one_and_two_threads_agree_bitwise() {
    // 4 * 8 * 33 * 33 = 34848 elements: above the parallel threshold.
    let shape = [4, 8, 33, 33];
    let numel = shape.iter().product();
    let x = random_vec(numel, -3.0, 5.0, 21);
    let dy = random_vec(numel, -1.0, 1.0, 22);
    let w = random_vec(8, 0.5, 2.0, 23);
    let b = random_vec(8, -1.0, 1.0, 24);
    let lrn = LrnParams::new(5).with_alpha(0.5);
    let run = || {
        let (mut rm, mut rv) = (vec![0.0f32; 8], vec![1.0f32; 8]);
        let running = RunningStats {
            mean: &mut rm,
            var: &mut rv,
        };
        let t = batch_norm_train(
            &x,
            &shape,
            Some(&w),
            Some(&b),
            Some(running),
            BatchNormParams::default(),
        )
        .unwrap();
        let g = batch_norm_backward_train(&dy, &x, &shape, Some(&w), &t.save_mean, &t.save_invstd)
            .unwrap();
        let e = batch_norm_eval(&x, &shape, Some(&w), Some(&b), &rm, &rv, 1e-5).unwrap();
        let ge = batch_norm_backward_eval(&dy, &x, &shape, Some(&w), &rm, &rv, 1e-5).unwrap();
        let l = local_response_norm(&x, &shape, &lrn).unwrap();
        let ldx = local_response_norm_backward(&dy, &x, &shape, &lrn).unwrap();
        [
            t.y,
            t.save_mean,
            t.save_invstd,
            rm,
            rv,
            g.dx,
            g.dweight,
            g.dbias,
            e,
            ge.dx,
            ge.dweight,
            ge.dbias,
            l,
            ldx,
        ]
        .map(|v| bits(&v))
    };
    let one = pool(1).install(run);
    let two = pool(2).install(run);
    assert_eq!(one, two);
}
