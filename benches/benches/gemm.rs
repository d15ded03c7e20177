//! GEMM throughput in FLOP/s: Ventral and matrixmultiply in one criterion group per shape.
//!
//! Shapes: squares from 64 to 2048 and layers of real networks (M x K x N, batch folded into
//! N where a convolution is lowered to one GEMM). Both run on the threads one matrixmultiply
//! call can use (`ventral_benches::peer_pool`: `MATMUL_NUM_THREADS` or the physical cores, at
//! most 4, as 1, 2 or 4), named in each group; `ventral bench gemm` measures Ventral on every
//! core and withholds the ratio when the counts differ.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ventral_benches::{peer_pool, random_vec};
use ventral_kernels::gemm::{MatMut, MatRef, gemm};
use ventral_kernels::peer::matrixmultiply_gemm;

/// `(M, K, N, name)`.
const SHAPES: &[(usize, usize, usize, &str)] = &[
    (64, 64, 64, "square"),
    (128, 128, 128, "square"),
    (256, 256, 256, "square"),
    (512, 512, 512, "square"),
    (1024, 1024, 1024, "square"),
    (2048, 2048, 2048, "square"),
    (64, 576, 3136, "vgg_conv_56"),
    (128, 1152, 784, "vgg_conv_28"),
    (16, 144, 65536, "resnet20_layer_b64"),
    (6, 25, 50176, "lenet5_conv1_b64"),
    (64, 50176, 576, "vgg_weight_grad_b16"),
    (128, 4096, 4096, "alexnet_fc_b128"),
    (64, 9216, 4096, "alexnet_fc_b64"),
];

fn bench_gemm(c: &mut Criterion) {
    let (pool, threads) = peer_pool();
    for &(m, k, n, name) in SHAPES {
        let a = random_vec(m * k, 1);
        let b = random_vec(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        let flops = 2 * m * k * n;
        let mut group = c.benchmark_group(format!("gemm/{name}/{m}x{k}x{n}/{threads}t"));
        group.throughput(Throughput::Elements(flops as u64));
        if flops > 1 << 30 {
            group.sample_size(10);
        }
        let a_view = MatRef::row_major(&a, m, k).expect("sized");
        let b_view = MatRef::row_major(&b, k, n).expect("sized");
        group.bench_function(BenchmarkId::from_parameter("ventral"), |bench| {
            pool.install(|| {
                bench.iter(|| {
                    let c_view = MatMut::row_major(&mut out, m, n).expect("sized");
                    gemm(1.0, a_view, b_view, 0.0, c_view).expect("shapes agree");
                })
            })
        });
        group.bench_function(BenchmarkId::from_parameter("matrixmultiply"), |bench| {
            bench.iter(|| {
                let c_view = MatMut::row_major(&mut out, m, n).expect("sized");
                matrixmultiply_gemm(1.0, a_view, b_view, 0.0, c_view).expect("shapes agree");
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);
