//! The fused training-mode batch norm + ReLU (`batch_norm_relu_train` and its backward)
//! against a plain f64 reference written from the definitions (batch statistics, biased
//! variance for the output, unbiased for the running update, `max(0, ·)`, the ReLU mask on
//! the gradient), against the unfused kernels bit for bit, on every instruction set, over odd
//! channel and position counts (1, 7, 17, 63, 65); 1 vs 2 threads bit-identical at ResNet-20's
//! first-stage geometry; invalid arguments.

mod common;

use common::{assert_close, assert_error, bits, isas, pool, random_vec};
use proptest::prelude::*;
use ventral_kernels::elementwise::{relu, relu_backward};
use ventral_kernels::norm::{
    BatchNormGrads, BatchNormParams, BatchNormTrainOutput, RunningStats, batch_norm_backward_train,
    batch_norm_relu_backward_train, batch_norm_relu_backward_train_on, batch_norm_relu_train,
    batch_norm_relu_train_on, batch_norm_train,
};

/// Gradient tolerances against the f64 reference (as `tests/norm.rs`).
const GRAD_ATOL: f64 = 1e-4;
const GRAD_RTOL: f64 = 1e-3;

/// A `[n, c, inner]` problem with its data.
struct Problem {
    n: usize,
    c: usize,
    inner: usize,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
    running: (Vec<f32>, Vec<f32>),
}

impl Problem {
    fn new(n: usize, c: usize, inner: usize, seed: u64) -> Self {
        let numel = n * c * inner;
        Self {
            n,
            c,
            inner,
            x: random_vec(numel, -2.0, 3.0, seed),
            w: random_vec(c, 0.5, 2.0, seed ^ 1),
            b: random_vec(c, -1.0, 1.0, seed ^ 2),
            dy: random_vec(numel, -1.0, 1.0, seed ^ 3),
            running: (
                random_vec(c, -1.0, 1.0, seed ^ 4),
                random_vec(c, 0.5, 2.0, seed ^ 5),
            ),
        }
    }

    fn shape(&self) -> [usize; 3] {
        [self.n, self.c, self.inner]
    }

    /// Indices of channel `c`'s elements.
    fn channel(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.n)
            .flat_map(move |n| (0..self.inner).map(move |i| (n * self.c + c) * self.inner + i))
    }

    /// The fused forward on `isa` (running statistics updated on copies, returned).
    fn fused(&self, isa: ventral_kernels::Isa) -> (BatchNormTrainOutput, Vec<f32>, Vec<f32>) {
        let (mut rm, mut rv) = self.running.clone();
        let running = RunningStats {
            mean: &mut rm,
            var: &mut rv,
        };
        let out = batch_norm_relu_train_on(
            isa,
            &self.x,
            &self.shape(),
            Some(&self.w),
            Some(&self.b),
            Some(running),
            BatchNormParams::new(1e-5, 0.1),
        )
        .unwrap();
        (out, rm, rv)
    }

    /// The unfused ops: `batch_norm_train` then `relu`, and their backward in turn.
    fn unfused(
        &self,
    ) -> (
        Vec<f32>,
        Vec<f32>,
        Vec<f32>,
        BatchNormTrainOutput,
        BatchNormGrads,
    ) {
        let (mut rm, mut rv) = self.running.clone();
        let running = RunningStats {
            mean: &mut rm,
            var: &mut rv,
        };
        let shape = self.shape();
        let bn = batch_norm_train(
            &self.x,
            &shape,
            Some(&self.w),
            Some(&self.b),
            Some(running),
            BatchNormParams::new(1e-5, 0.1),
        )
        .unwrap();
        let mut y = vec![0.0; bn.y.len()];
        relu(&bn.y, &mut y).unwrap();
        let mut dz = vec![0.0; y.len()];
        relu_backward(&y, &self.dy, &mut dz).unwrap();
        let g = batch_norm_backward_train(
            &dz,
            &self.x,
            &shape,
            Some(&self.w),
            &bn.save_mean,
            &bn.save_invstd,
        )
        .unwrap();
        (y, rm, rv, bn, g)
    }

    /// The f64 reference: `max(0, (x - μ) / sqrt(σ² + eps) w + b)` with the batch's mean
    /// and biased variance; the running statistics `0.9 r + 0.1 s` with the unbiased
    /// variance; the gradient of the batch norm (Ioffe & Szegedy 2015) applied to `dy`
    /// masked where the kernel's `y` is not positive (the mask is a discrete choice; near
    /// the kink the f32 and f64 outputs could fall on different sides).
    #[allow(clippy::type_complexity)]
    fn reference(
        &self,
        y_mask: &[f32],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let m = (self.n * self.inner) as f64;
        let eps = 1e-5;
        let numel = self.x.len();
        let (mut y, mut dx) = (vec![0.0; numel], vec![0.0; numel]);
        let (mut rm, mut rv, mut dw, mut db) = (vec![], vec![], vec![], vec![]);
        for c in 0..self.c {
            let x = |i: usize| f64::from(self.x[i]);
            let mean = self.channel(c).map(x).sum::<f64>() / m;
            let ss: f64 = self.channel(c).map(|i| (x(i) - mean).powi(2)).sum();
            let r = 1.0 / (ss / m + eps).sqrt();
            let (w, b) = (f64::from(self.w[c]), f64::from(self.b[c]));
            let xhat = |i: usize| (x(i) - mean) * r;
            let g = |i: usize| {
                if y_mask[i] > 0.0 {
                    f64::from(self.dy[i])
                } else {
                    0.0
                }
            };
            let sum_g: f64 = self.channel(c).map(g).sum();
            let sum_g_xhat: f64 = self.channel(c).map(|i| g(i) * xhat(i)).sum();
            for i in self.channel(c) {
                y[i] = (xhat(i) * w + b).max(0.0);
                dx[i] = w * r / m * (m * g(i) - sum_g - xhat(i) * sum_g_xhat);
            }
            rm.push(0.9 * f64::from(self.running.0[c]) + 0.1 * mean);
            rv.push(0.9 * f64::from(self.running.1[c]) + 0.1 * ss / (m - 1.0));
            dw.push(sum_g_xhat);
            db.push(sum_g);
        }
        (y, rm, rv, dx, dw, db)
    }
}

/// Channel and position counts that break 8- and 16-wide chunking.
fn odd() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 7, 17, 63, 65])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// On every instruction set: the fused forward and backward against the f64 reference
    /// and bit for bit against `batch_norm_train → relu` and `relu_backward →
    /// batch_norm_backward_train`.
    #[test]
    fn fused_matches_reference_and_unfused_bits(
        n in 1usize..=3,
        c in odd(),
        inner in odd(),
        seed in any::<u64>(),
    ) {
        prop_assume!(n * inner >= 2);
        let pb = Problem::new(n, c, inner, seed);
        let (uy, urm, urv, ubn, ug) = pb.unfused();
        for isa in isas() {
            let (out, rm, rv) = pb.fused(isa);
            let g = batch_norm_relu_backward_train_on(
                isa, &pb.dy, &out.y, &pb.x, &pb.shape(), Some(&pb.w), &out.save_mean, &out.save_invstd,
            ).unwrap();
            let what = isa.name();
            prop_assert_eq!(bits(&out.y), bits(&uy), "y on {}", what);
            prop_assert_eq!(bits(&out.save_mean), bits(&ubn.save_mean), "save_mean on {}", what);
            prop_assert_eq!(bits(&out.save_invstd), bits(&ubn.save_invstd), "save_invstd on {}", what);
            prop_assert_eq!(bits(&rm), bits(&urm), "running mean on {}", what);
            prop_assert_eq!(bits(&rv), bits(&urv), "running var on {}", what);
            prop_assert_eq!(bits(&g.dx), bits(&ug.dx), "dx on {}", what);
            prop_assert_eq!(bits(&g.dweight), bits(&ug.dweight), "dweight on {}", what);
            prop_assert_eq!(bits(&g.dbias), bits(&ug.dbias), "dbias on {}", what);

            let (ry, rrm, rrv, rdx, rdw, rdb) = pb.reference(&out.y);
            assert_close(&out.y, &ry, 1e-5, 1e-5, "y vs reference");
            assert_close(&rm, &rrm, 1e-6, 1e-6, "running mean vs reference");
            assert_close(&rv, &rrv, 1e-6, 1e-6, "running var vs reference");
            assert_close(&g.dx, &rdx, GRAD_ATOL, GRAD_RTOL, "dx vs reference");
            assert_close(&g.dweight, &rdw, GRAD_ATOL, GRAD_RTOL, "dweight vs reference");
            assert_close(&g.dbias, &rdb, GRAD_ATOL, GRAD_RTOL, "dbias vs reference");
        }
    }
}

/// The mask really is applied: with a gradient only where the ReLU was off, nothing flows
/// back; with every output positive (a large bias), the fused gradient is the plain batch
/// norm's.
#[test]
fn mask_decides_what_flows() {
    let mut pb = Problem::new(2, 7, 17, 9);
    let out = pb.fused(ventral_kernels::Isa::detect()).0;
    assert!(out.y.contains(&0.0) && out.y.iter().any(|&y| y > 0.0));
    let off: Vec<f32> = out
        .y
        .iter()
        .map(|&y| if y > 0.0 { 0.0 } else { 1.0 })
        .collect();
    let shape = pb.shape();
    let g = batch_norm_relu_backward_train(
        &off,
        &out.y,
        &pb.x,
        &shape,
        Some(&pb.w),
        &out.save_mean,
        &out.save_invstd,
    )
    .unwrap();
    assert!(
        g.dx.iter()
            .chain(&g.dweight)
            .chain(&g.dbias)
            .all(|&v| v == 0.0)
    );

    pb.b = vec![100.0; pb.c];
    let out = pb.fused(ventral_kernels::Isa::detect()).0;
    assert!(out.y.iter().all(|&y| y > 0.0));
    let fused = batch_norm_relu_backward_train(
        &pb.dy,
        &out.y,
        &pb.x,
        &shape,
        Some(&pb.w),
        &out.save_mean,
        &out.save_invstd,
    )
    .unwrap();
    let plain = batch_norm_backward_train(
        &pb.dy,
        &pb.x,
        &shape,
        Some(&pb.w),
        &out.save_mean,
        &out.save_invstd,
    )
    .unwrap();
    assert_eq!(bits(&fused.dx), bits(&plain.dx));
    assert_eq!(bits(&fused.dweight), bits(&plain.dweight));
}

/// ResNet-20's first stage at a reduced batch (`[8, 16, 32, 32]`, 131072 elements, above the
/// parallel threshold) and an odd shape: 1 and 2 threads give the same bits, on every
/// instruction set.
#[test]
fn one_and_two_threads_agree_bitwise() {
    for (n, c, inner) in [(8, 16, 32 * 32), (5, 65, 129)] {
        let pb = Problem::new(n, c, inner, 33);
        for isa in isas() {
            let run = || {
                let (out, rm, rv) = pb.fused(isa);
                let g = batch_norm_relu_backward_train_on(
                    isa,
                    &pb.dy,
                    &out.y,
                    &pb.x,
                    &pb.shape(),
                    Some(&pb.w),
                    &out.save_mean,
                    &out.save_invstd,
                )
                .unwrap();
                [
                    out.y,
                    out.save_mean,
                    out.save_invstd,
                    rm,
                    rv,
                    g.dx,
                    g.dweight,
                    g.dbias,
                ]
                .map(|v| bits(&v))
            };
            let one = pool(1).install(run);
            let two = pool(2).install(run);
            assert!(
                one == two,
                "{n}x{c}x{inner} on {}: 1 and 2 threads differ",
                isa.name()
            );
        }
    }
}

#[test]
fn invalid_arguments_are_errors() {
    let x = [1.0, 2.0, 3.0, 4.0];
    let p = BatchNormParams::default();
    assert_error(
        batch_norm_relu_train(&x, &[2, 3], None, None, None, p),
        "ShapeMismatch",
        "x has 4 elements",
    );
    assert_error(
        batch_norm_relu_train(&x, &[1, 4], None, None, None, p),
        "ShapeMismatch",
        "more than 1 value per channel",
    );
    assert_error(
        batch_norm_relu_train(&x, &[2, 2], Some(&[1.0]), None, None, p),
        "ShapeMismatch",
        "weight has 1 elements",
    );
    let s = [0.0, 1.0];
    assert_error(
        batch_norm_relu_backward_train(&x, &x[..3], &x, &[2, 2], None, &s, &s),
        "ShapeMismatch",
        "y has 3 elements",
    );
    assert_error(
        batch_norm_relu_backward_train(&x[..3], &x, &x, &[2, 2], None, &s, &s),
        "ShapeMismatch",
        "dy has 3 elements",
    );
    assert_error(
        batch_norm_relu_backward_train(&x, &x, &x, &[2, 2], None, &s[..1], &s),
        "ShapeMismatch",
        "save_mean has 1 elements",
    );
}
