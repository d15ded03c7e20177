//! Convolution throughput in FLOP/s for each pass of real layers, next to a peer that does
//! the same work with explicit lowering (im2col or col2im around matrixmultiply's sgemm,
//! `ventral_kernels::peer::conv`) in the same criterion group, on the same number of threads
//! (`ventral_benches::peer_pool`). Each pass's peer result is checked against Ventral's
//! before anything is timed.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ventral_benches::{peer_pool, random_vec};
use ventral_kernels::conv::{Conv2d, Conv2dParams, Pass};
use ventral_kernels::peer::conv::{LoweredConv, PassInputs, normwise_difference, run_ventral};

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

/// Largest accepted `max |peer - ventral| / max |ventral|`: the same sums in another order
/// drift by about `√L · 2⁻²⁴` (1.3e-5 for the longest, `L = 50176`); see `ventral bench conv`.
const TOLERANCE: f64 = 1e-4;

fn bench_conv(c: &mut Criterion) {
    let (pool, threads) = peer_pool();
    for &(name, input, weight, stride, padding) in LAYERS {
        let conv = Conv2d::new(
            input,
            weight,
            Conv2dParams::default().stride(stride).padding(padding),
        )
        .expect("valid layer");
        let g = *conv.geometry();
        let mut peer = LoweredConv::new(&g).expect("one group");
        let len = |s: [usize; 4]| s.iter().product::<usize>();
        let x = random_vec(len(g.input_shape()), 1);
        let w = random_vec(len(g.weight_shape()), 2);
        let dy = random_vec(len(g.output_shape()), 3);
        let mut group = c.benchmark_group(format!("conv/{name}/{threads}t"));
        group.throughput(Throughput::Elements(2 * g.macs() as u64));
        group.sample_size(10);
        let inputs = PassInputs {
            x: &x,
            w: &w,
            bias: None,
            dy: &dy,
        };
        for pass in Pass::ALL {
            let size = pass.output_len(&g);
            let (mut ours_out, mut peer_out) = (vec![0.0f32; size], vec![0.0f32; size]);
            let ours = |out: &mut [f32]| run_ventral(&conv, pass, &inputs, out);
            let mut theirs = |out: &mut [f32]| peer.run(pass, &inputs, out);
            pool.install(|| {
                ours(&mut ours_out).expect("sized");
                theirs(&mut peer_out).expect("sized");
            });
            let diff = normwise_difference(&peer_out, &ours_out);
            assert!(
                diff <= TOLERANCE,
                "{name} {}: the peer differs from Ventral by {diff:e} of the largest value",
                pass.name()
            );
            group.bench_function(BenchmarkId::new(pass.name(), "ventral"), |b| {
                pool.install(|| b.iter(|| ours(&mut ours_out).expect("sized")))
            });
            group.bench_function(
                BenchmarkId::new(pass.name(), "lowering_matrixmultiply"),
                |b| pool.install(|| b.iter(|| theirs(&mut peer_out).expect("sized"))),
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
