//! One LeNet-5 training step (forward, cross-entropy, backward) as the kernel calls the
//! autograd graph makes, called directly on buffers allocated once.
//!
//! The calls, their arguments and their order are those of `LeNet5::forward`,
//! `loss::cross_entropy` and `Tensor::backward` (`crates/autograd/src/ops`): the convolution
//! kernels, `relu`, the 2x2 max pooling, a GEMM against a transposed view of each linear
//! layer's weight, the broadcasting `add` of its bias, `log_softmax`, the f64 `sum` of the
//! picked log-probabilities, and in backward `log_softmax_backward`, `sum_to_shape` for each
//! linear bias, `relu_backward` on the saved outputs, and each weight gradient as the GEMM
//! `xᵀ · dy` transposed into `[out, in]`. So the loss and every gradient are bit-equal to
//! autograd's ([`LeNetKernelStep::check_against_autograd`]); what differs is only what the
//! graph adds: recording nodes, allocating every result, copying gradients that pass through.

use ventral_kernels::conv::{Conv2d, Conv2dParams};
use ventral_kernels::elementwise::{add, relu, relu_backward, sum_to_shape};
use ventral_kernels::gemm::{MatMut, MatRef, gemm};
use ventral_kernels::pool::{MaxPool2dParams, max_pool2d_backward_into, max_pool2d_into};
use ventral_kernels::reduce::sum;
use ventral_kernels::softmax::{log_softmax, log_softmax_backward};
use ventral_models::LeNet5;
use ventral_nn::{Module, Tensor, loss, named_parameters};

/// `(in_features, out_features)` of `fc1`, `fc2`, `fc3` (10 classes).
const FC: [(usize, usize); 3] = [(400, 120), (120, 84), (84, 10)];
/// Classes of the output layer.
const CLASSES: usize = 10;

/// The buffers of one step, each allocated once.
struct Buffers {
    /// conv1 output, its ReLU, the pooled map and the pooling indices.
    c1: Vec<f32>,
    r1: Vec<f32>,
    p1: Vec<f32>,
    i1: Vec<i64>,
    /// The same for conv2; `p2` is `[N, 400]`, fc1's input.
    c2: Vec<f32>,
    r2: Vec<f32>,
    p2: Vec<f32>,
    i2: Vec<i64>,
    /// Per linear layer: the product `x Wᵀ`, the biased `z`, and (fc1, fc2) its ReLU.
    prod: [Vec<f32>; 3],
    z: [Vec<f32>; 3],
    act: [Vec<f32>; 2],
    /// `log_softmax(logits)`, the picked entries and their f64 sum.
    logp: Vec<f32>,
    picked: Vec<f32>,
    total: [f32; 1],
    /// Backward: gradient of `logp`, then of each linear output `z` and input.
    dlogp: Vec<f32>,
    dz: [Vec<f32>; 3],
    /// Gradient of each linear layer's input (`[N, in]`): `dx[0]` is fc1's, i.e. of `p2`.
    dx: [Vec<f32>; 3],
    /// Gradient of each linear weight before its transpose, `[in, out]`.
    dwt: [Vec<f32>; 3],
    dr2: Vec<f32>,
    dc2: Vec<f32>,
    dp1: Vec<f32>,
    dr1: Vec<f32>,
    dc1: Vec<f32>,
}

/// LeNet-5's training step as direct kernel calls on preallocated buffers.
pub struct LeNetKernelStep {
    conv1: Conv2d,
    conv2: Conv2d,
    batch: usize,
    /// The model's parameters in `named_parameters` order: conv1.weight, conv1.bias, conv2.*,
    /// fc1.*, fc2.*, fc3.* (weights `[out, in]` as PyTorch).
    params: Vec<Vec<f32>>,
    /// Their gradients, same order and shapes, written by [`LeNetKernelStep::run`].
    grads: Vec<Vec<f32>>,
    x: Vec<f32>,
    labels: Vec<usize>,
    loss: f32,
    buf: Buffers,
}

/// `C = A · B` with row-major `C` (`m x n`).
fn matmul_into(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32]) {
    let (m, n) = (a.rows(), b.cols());
    gemm(1.0, a, b, 0.0, MatMut::row_major(c, m, n).expect("sized")).expect("shapes agree");
}

impl LeNetKernelStep {
    /// The step for `model`'s current parameters on input `x` (`[batch, 1, 28, 28]`,
    /// row-major) with `labels` (one per image, below 10).
    ///
    /// # Panics
    /// If `x` or `labels` do not fit `batch`.
    pub fn new(model: &mut LeNet5, x: Vec<f32>, labels: Vec<usize>) -> Self {
        let batch = labels.len();
        assert_eq!(x.len(), batch * 784, "x must be [batch, 1, 28, 28]");
        let p = Conv2dParams::default();
        let conv1 = Conv2d::new([batch, 1, 28, 28], [6, 1, 5, 5], p.padding(2)).expect("valid");
        let conv2 = Conv2d::new([batch, 6, 14, 14], [16, 6, 5, 5], p).expect("valid");
        let params: Vec<Vec<f32>> = named_parameters(model)
            .into_iter()
            .map(|(_, t)| t.to_vec())
            .collect();
        let grads = params.iter().map(|p| vec![0.0; p.len()]).collect();
        let n = batch;
        let zeros = |len: usize| vec![0.0f32; len];
        let buf = Buffers {
            c1: zeros(n * 6 * 784),
            r1: zeros(n * 6 * 784),
            p1: zeros(n * 6 * 196),
            i1: vec![0; n * 6 * 196],
            c2: zeros(n * 16 * 100),
            r2: zeros(n * 16 * 100),
            p2: zeros(n * 400),
            i2: vec![0; n * 400],
            prod: FC.map(|(_, o)| zeros(n * o)),
            z: FC.map(|(_, o)| zeros(n * o)),
            act: [zeros(n * 120), zeros(n * 84)],
            logp: zeros(n * CLASSES),
            picked: zeros(n),
            total: [0.0],
            dlogp: zeros(n * CLASSES),
            dz: FC.map(|(_, o)| zeros(n * o)),
            dx: FC.map(|(i, _)| zeros(n * i)),
            dwt: FC.map(|(i, o)| zeros(i * o)),
            dr2: zeros(n * 16 * 100),
            dc2: zeros(n * 16 * 100),
            dp1: zeros(n * 6 * 196),
            dr1: zeros(n * 6 * 784),
            dc1: zeros(n * 6 * 784),
        };
        LeNetKernelStep {
            conv1,
            conv2,
            batch,
            params,
            grads,
            x,
            labels,
            loss: f32::NAN,
            buf,
        }
    }

    /// The loss of the last [`LeNetKernelStep::run`].
    pub fn loss(&self) -> f32 {
        self.loss
    }

    /// The parameter gradients of the last [`LeNetKernelStep::run`], in `named_parameters`
    /// order.
    pub fn grads(&self) -> &[Vec<f32>] {
        &self.grads
    }

    /// One forward and backward pass; allocates nothing of its own (the kernels keep their
    /// internal scratch, as they do under autograd).
    pub fn run(&mut self) {
        let (n, pool) = (self.batch, MaxPool2dParams::square(2));
        let (w, b) = (&mut self.buf, &self.params);
        let ok = "sized";
        // Forward, as LeNet5::forward.
        self.conv1
            .forward(&self.x, &b[0], Some(&b[1]), &mut w.c1)
            .expect(ok);
        relu(&w.c1, &mut w.r1).expect(ok);
        max_pool2d_into(&w.r1, [n, 6, 28, 28], &pool, &mut w.p1, &mut w.i1).expect(ok);
        self.conv2
            .forward(&w.p1, &b[2], Some(&b[3]), &mut w.c2)
            .expect(ok);
        relu(&w.c2, &mut w.r2).expect(ok);
        max_pool2d_into(&w.r2, [n, 16, 10, 10], &pool, &mut w.p2, &mut w.i2).expect(ok);
        for (l, &(fi, fo)) in FC.iter().enumerate() {
            let input = match l {
                0 => &w.p2,
                _ => &w.act[l - 1],
            };
            // x · Wᵀ through a transposed view of W [out, in], as `x.matmul(&w.t())`.
            let wt = MatRef::row_major(&b[4 + 2 * l], fo, fi).expect(ok).t();
            matmul_into(
                MatRef::row_major(input, n, fi).expect(ok),
                wt,
                &mut w.prod[l],
            );
            add(&w.prod[l], &[n, fo], &b[5 + 2 * l], &[fo], &mut w.z[l]).expect(ok);
            if l < 2 {
                relu(&w.z[l], &mut w.act[l]).expect(ok);
            }
        }
        // Cross-entropy: -mean(log_softmax(logits)[i, label_i]).
        log_softmax(&w.z[2], &[n, CLASSES], &mut w.logp).expect(ok);
        for (i, &label) in self.labels.iter().enumerate() {
            w.picked[i] = w.logp[i * CLASSES + label];
        }
        sum(&w.picked, &[n], 0, &mut w.total).expect(ok);
        self.loss = -(w.total[0] / n as f32);
        // Backward: d loss = 1 -> neg -> mean (÷ N) -> gather (scatter) -> log_softmax.
        let g = -1.0 / n as f32;
        w.dlogp.fill(0.0);
        for (i, &label) in self.labels.iter().enumerate() {
            w.dlogp[i * CLASSES + label] += g;
        }
        log_softmax_backward(&w.logp, &w.dlogp, &[n, CLASSES], &mut w.dz[2]).expect(ok);
        let gr = &mut self.grads;
        for l in (0..3).rev() {
            let (fi, fo) = FC[l];
            if l < 2 {
                // dz = relu'(z) dy, from the saved ReLU output.
                relu_backward(&w.act[l], &w.dx[l + 1], &mut w.dz[l]).expect(ok);
            }
            sum_to_shape(&w.dz[l], &[n, fo], &[fo], &mut gr[5 + 2 * l]).expect(ok);
            let dy = MatRef::row_major(&w.dz[l], n, fo).expect(ok);
            // dX = dY · W (the transpose of the Wᵀ view), dWᵀ = Xᵀ · dY.
            let wv = MatRef::row_major(&b[4 + 2 * l], fo, fi).expect(ok);
            matmul_into(dy, wv, &mut w.dx[l]);
            let input = match l {
                0 => &w.p2,
                _ => &w.act[l - 1],
            };
            let xt = MatRef::row_major(input, n, fi).expect(ok).t();
            matmul_into(xt, dy, &mut w.dwt[l]);
            // The `t()` view's backward: dW [out, in] = (dWᵀ)ᵀ.
            let dw = &mut gr[4 + 2 * l];
            for (i, row) in w.dwt[l].chunks_exact(fo).enumerate() {
                for (o, &v) in row.iter().enumerate() {
                    dw[o * fi + i] = v;
                }
            }
        }
        max_pool2d_backward_into(&w.dx[0], &w.i2, [n, 16, 10, 10], &pool, &mut w.dr2).expect(ok);
        relu_backward(&w.r2, &w.dr2, &mut w.dc2).expect(ok);
        self.conv2
            .backward_input(&w.dc2, &b[2], &mut w.dp1)
            .expect(ok);
        self.conv2
            .backward_weight(&w.p1, &w.dc2, &mut gr[2])
            .expect(ok);
        self.conv2.backward_bias(&w.dc2, &mut gr[3]).expect(ok);
        max_pool2d_backward_into(&w.dp1, &w.i1, [n, 6, 28, 28], &pool, &mut w.dr1).expect(ok);
        relu_backward(&w.r1, &w.dr1, &mut w.dc1).expect(ok);
        self.conv1
            .backward_weight(&self.x, &w.dc1, &mut gr[0])
            .expect(ok);
        self.conv1.backward_bias(&w.dc1, &mut gr[1]).expect(ok);
    }

    /// Runs the step here (twice, so the result read is the one computed on buffers the
    /// previous step left behind, as in a timed loop) and once through `model`'s autograd
    /// graph on the same input, and returns a description of every difference: the loss and
    /// each gradient must be bit-equal, since both make the same kernel calls in the same
    /// order (on any thread count, as every kernel is bit-identical across thread counts).
    pub fn check_against_autograd(&mut self, model: &mut LeNet5) -> Vec<String> {
        self.run();
        self.run();
        let x = Tensor::from_vec(self.x.clone(), [self.batch, 1, 28, 28]).expect("sized");
        let logits = model.forward(&x).expect("LeNet-5 runs");
        let l = loss::cross_entropy(&logits, &self.labels, 0.0).expect("labels fit");
        let theirs = l.item().expect("scalar");
        let grads = l.backward().expect("backward runs");
        let mut diffs = Vec::new();
        if theirs.to_bits() != self.loss.to_bits() {
            diffs.push(format!("loss: direct {} vs autograd {theirs}", self.loss));
        }
        for ((name, p), ours) in named_parameters(model).iter().zip(&self.grads) {
            let Some(g) = grads.get(p) else {
                diffs.push(format!("{name}: autograd has no gradient"));
                continue;
            };
            let g = g.to_vec();
            let differ = g.len() != ours.len()
                || g.iter().zip(ours).any(|(a, b)| a.to_bits() != b.to_bits());
            if differ {
                let worst = g
                    .iter()
                    .zip(ours)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                diffs.push(format!(
                    "{name}: gradients differ (max |difference| {worst:e})"
                ));
            }
        }
        diffs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random_vec;

    /// The direct path is bit-equal to autograd at the bench's batch of 64 (so the LeNet-5
    /// convolution paths the bench times are the ones checked), and the check can fail: a
    /// step whose first fc2 weight is one ulp off must be reported. (That weight reaches the
    /// loss and the other gradients only through fc2's first output; which gradients the ulp
    /// shows in depends on how every value before it rounded: fc3's weight gradient alone
    /// while LeNet-5's first layer ran through the GEMM, fc1's and the convolutions' since it
    /// reads flat rows in place on AVX-512.)
    #[test]
    fn direct_step_equals_autograd_bitwise() {
        let mut model = LeNet5::new(10, 0).expect("valid");
        let labels: Vec<usize> = (0..64).map(|i| i % 10).collect();
        let x = random_vec(64 * 784, 9);
        let mut step = LeNetKernelStep::new(&mut model, x.clone(), labels.clone());
        assert_eq!(
            step.check_against_autograd(&mut model),
            Vec::<String>::new()
        );
        assert!(step.loss().is_finite());

        let mut broken = LeNetKernelStep::new(&mut model, x, labels);
        let w = &mut broken.params[6][0];
        *w = f32::from_bits(w.to_bits() + 1);
        let diffs = broken.check_against_autograd(&mut model);
        assert!(
            !diffs.is_empty() && diffs.iter().all(|d| d.contains("gradients differ")),
            "{diffs:?}"
        );
    }
}
