//! Convolution throughput in FLOP/s for each pass of real layers, next to a GEMM of the same
//! shape (batch folded into N) in the same criterion group.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ventral_benches::random_vec;
use ventral_kernels::conv::{Conv2d, Conv2dParams};
use ventral_kernels::gemm::{MatMut, MatRef, gemm};

/// `(name, input [N, C, H, W], weight [O, C, KH, KW], stride, padding)`.
type Layer = (&'static str, [usize; 4], [usize; 4], usize, usize);

const LAYERS: &[Layer] = &[
    ("lenet5_conv1_b64", [64, 1, 28, 28], [6, 1, 5, 5], 1, 2),
    ("lenet5_conv2_b64", [64, 6, 14, 14], [16, 6, 5, 5], 1, 0),
    ("vgg_64_56_b16", [16, 64, 56, 56], [64, 64, 3, 3], 1, 1),
    ("vgg_128_28_b16", [16, 128, 28, 28], [128, 128, 3, 3], 1, 1),
    ("resnet20_16_32_b64", [64, 16, 32, 32], [16, 16, 3, 3], 1, 1),
    (
        "alexnet_conv1_b16",
        [16, 3, 224, 224],
        [64, 3, 11, 11],
        4,
        2,
    ),
    (
        "resnet50_1x1_256_64_b16",
        [16, 256, 56, 56],
        [64, 256, 1, 1],
        1,
        0,
    ),
];

fn bench_conv(c: &mut Criterion) {
    for &(name, input, weight, stride, padding) in LAYERS {
        let conv = Conv2d::new(
            input,
            weight,
            Conv2dParams::default().stride(stride).padding(padding),
        )
        .expect("valid layer");
        let g = *conv.geometry();
        let len = |s: [usize; 4]| s.iter().product::<usize>();
        let x = random_vec(len(g.input_shape()), 1);
        let w = random_vec(len(g.weight_shape()), 2);
        let dy = random_vec(len(g.output_shape()), 3);
        let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
        let (m, k, n) = (
            g.out_channels,
            len(g.weight_shape()) / g.out_channels,
            g.batch * g.out_h * g.out_w,
        );
        let mut group = c.benchmark_group(format!("conv/{name}"));
        group.throughput(Throughput::Elements(2 * g.macs() as u64));
        group.sample_size(10);
        group.bench_function(BenchmarkId::from_parameter("forward"), |b| {
            b.iter(|| conv.forward(&x, &w, None, &mut y).expect("sized"))
        });
        group.bench_function(BenchmarkId::from_parameter("backward_input"), |b| {
            b.iter(|| conv.backward_input(&dy, &w, &mut dx).expect("sized"))
        });
        group.bench_function(BenchmarkId::from_parameter("backward_weight"), |b| {
            b.iter(|| conv.backward_weight(&x, &dy, &mut dw).expect("sized"))
        });
        let (a, bm) = (random_vec(m * k, 4), random_vec(k * n, 5));
        let mut out = vec![0.0; m * n];
        group.bench_function(BenchmarkId::from_parameter("gemm_same_shape"), |b| {
            b.iter(|| {
                gemm(
                    1.0,
                    MatRef::row_major(&a, m, k).expect("sized"),
                    MatRef::row_major(&bm, k, n).expect("sized"),
                    0.0,
                    MatMut::row_major(&mut out, m, n).expect("sized"),
                )
                .expect("shapes agree")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
