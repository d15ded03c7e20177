//! Autograd overhead: a LeNet-5 training step (forward + backward, batch 64) through the
//! autograd graph, next to exactly the same kernel calls made directly on preallocated
//! buffers. The difference is what the graph costs: bookkeeping, allocation, copies.

use criterion::{Criterion, criterion_group, criterion_main};
use ventral_benches::random_vec;
use ventral_kernels::conv::{Conv2d as ConvKernel, Conv2dParams};
use ventral_kernels::elementwise::{relu, relu_backward};
use ventral_kernels::gemm::{MatMut, MatRef, gemm};
use ventral_kernels::pool::{MaxPool2dParams, max_pool2d, max_pool2d_backward};
use ventral_kernels::softmax::softmax;
use ventral_models::LeNet5;
use ventral_nn::{Module, Tensor, loss};

const BATCH: usize = 64;

/// `C (m x n) = A (m x k) · B (k x n)` with optional transposes, row-major buffers.
fn matmul(
    a: &[f32],
    at: bool,
    b: &[f32],
    bt: bool,
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    let av = if at {
        MatRef::row_major(a, k, m).unwrap().t()
    } else {
        MatRef::row_major(a, m, k).unwrap()
    };
    let bv = if bt {
        MatRef::row_major(b, n, k).unwrap().t()
    } else {
        MatRef::row_major(b, k, n).unwrap()
    };
    gemm(1.0, av, bv, 0.0, MatMut::row_major(c, m, n).unwrap()).unwrap();
}

/// The kernels of one LeNet-5 step, called directly.
struct KernelStep {
    conv1: ConvKernel,
    conv2: ConvKernel,
    w: [Vec<f32>; 5],
    b: [Vec<f32>; 5],
    x: Vec<f32>,
    labels: Vec<usize>,
}

impl KernelStep {
    fn new() -> Self {
        let p = Conv2dParams::default();
        KernelStep {
            conv1: ConvKernel::new([BATCH, 1, 28, 28], [6, 1, 5, 5], p.padding(2)).unwrap(),
            conv2: ConvKernel::new([BATCH, 6, 14, 14], [16, 6, 5, 5], p).unwrap(),
            w: [150, 2400, 48000, 10080, 840].map(|n| random_vec(n, n as u64)),
            b: [6, 16, 120, 84, 10].map(|n| random_vec(n, n as u64 + 1)),
            x: random_vec(BATCH * 784, 9),
            labels: (0..BATCH).map(|i| i % 10).collect(),
        }
    }

    fn run(&self) {
        let pool = MaxPool2dParams::square(2);
        // Forward.
        let mut c1 = vec![0.0; BATCH * 6 * 784];
        self.conv1
            .forward(&self.x, &self.w[0], Some(&self.b[0]), &mut c1)
            .unwrap();
        let mut r1 = vec![0.0; c1.len()];
        relu(&c1, &mut r1).unwrap();
        let p1 = max_pool2d(&r1, [BATCH, 6, 28, 28], &pool).unwrap();
        let mut c2 = vec![0.0; BATCH * 16 * 100];
        self.conv2
            .forward(&p1.y, &self.w[1], Some(&self.b[1]), &mut c2)
            .unwrap();
        let mut r2 = vec![0.0; c2.len()];
        relu(&c2, &mut r2).unwrap();
        let p2 = max_pool2d(&r2, [BATCH, 16, 10, 10], &pool).unwrap();
        let dims = [(400, 120), (120, 84), (84, 10)];
        let mut acts = vec![p2.y.clone()];
        let mut pre = Vec::new();
        for (i, &(fan_in, fan_out)) in dims.iter().enumerate() {
            let mut z = vec![0.0; BATCH * fan_out];
            matmul(
                acts.last().unwrap(),
                false,
                &self.w[i + 2],
                true,
                &mut z,
                (BATCH, fan_in, fan_out),
            );
            for row in z.chunks_mut(fan_out) {
                for (v, b) in row.iter_mut().zip(&self.b[i + 2]) {
                    *v += b;
                }
            }
            if i < 2 {
                let mut a = vec![0.0; z.len()];
                relu(&z, &mut a).unwrap();
                pre.push(z);
                acts.push(a);
            } else {
                pre.push(z);
            }
        }
        // Cross-entropy backward: (softmax - one-hot) / N.
        let logits = pre.last().unwrap();
        let mut d = vec![0.0; logits.len()];
        softmax(logits, &[BATCH, 10], &mut d).unwrap();
        for (i, &l) in self.labels.iter().enumerate() {
            d[i * 10 + l] -= 1.0;
        }
        d.iter_mut().for_each(|v| *v /= BATCH as f32);
        // Fully connected layers backward.
        for i in (0..3).rev() {
            let (fan_in, fan_out) = dims[i];
            let mut dw = vec![0.0; fan_in * fan_out];
            matmul(&d, true, &acts[i], false, &mut dw, (fan_out, BATCH, fan_in));
            let mut dx = vec![0.0; BATCH * fan_in];
            matmul(
                &d,
                false,
                &self.w[i + 2],
                false,
                &mut dx,
                (BATCH, fan_out, fan_in),
            );
            d = if i > 0 {
                let mut g = vec![0.0; dx.len()];
                relu_backward(&pre[i - 1], &dx, &mut g).unwrap();
                g
            } else {
                dx
            };
        }
        // Convolutions backward.
        let dp2 = max_pool2d_backward(&d, &p2.indices, [BATCH, 16, 10, 10], &pool).unwrap();
        let mut dc2 = vec![0.0; dp2.len()];
        relu_backward(&c2, &dp2, &mut dc2).unwrap();
        let (mut dw2, mut db2, mut dx2) = (vec![0.0; 2400], vec![0.0; 16], vec![0.0; p1.y.len()]);
        self.conv2.backward_weight(&p1.y, &dc2, &mut dw2).unwrap();
        self.conv2.backward_bias(&dc2, &mut db2).unwrap();
        self.conv2
            .backward_input(&dc2, &self.w[1], &mut dx2)
            .unwrap();
        let dp1 = max_pool2d_backward(&dx2, &p1.indices, [BATCH, 6, 28, 28], &pool).unwrap();
        let mut dc1 = vec![0.0; dp1.len()];
        relu_backward(&c1, &dp1, &mut dc1).unwrap();
        let (mut dw1, mut db1) = (vec![0.0; 150], vec![0.0; 6]);
        self.conv1.backward_weight(&self.x, &dc1, &mut dw1).unwrap();
        self.conv1.backward_bias(&dc1, &mut db1).unwrap();
    }
}

fn bench_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("autograd_overhead/lenet5_b64");
    let model = LeNet5::new(10, 0).unwrap();
    let x = Tensor::from_vec(random_vec(BATCH * 784, 9), [BATCH, 1, 28, 28]).unwrap();
    let labels: Vec<usize> = (0..BATCH).map(|i| i % 10).collect();
    group.bench_function("autograd_forward_backward", |b| {
        b.iter(|| {
            let l = loss::cross_entropy(&model.forward(&x).unwrap(), &labels, 0.0).unwrap();
            l.backward().unwrap()
        })
    });
    let step = KernelStep::new();
    group.bench_function("kernels_only", |b| b.iter(|| step.run()));
    group.finish();
}

criterion_group!(benches, bench_overhead);
criterion_main!(benches);
