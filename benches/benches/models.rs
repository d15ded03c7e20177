//! Whole-model inference: ResNet-18 forward at batch 1, 224x224, on 1 and 2 threads.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ventral_models::ResNet;
use ventral_nn::{Mode, Module, Tensor, no_grad};

fn bench_resnet18(c: &mut Criterion) {
    let mut model = ResNet::new(18, 1000, 0).expect("resnet18");
    model.set_mode(Mode::Eval);
    let x = Tensor::rand_normal(vec![1, 3, 224, 224], 0.0, 1.0, 1).expect("input");
    let mut group = c.benchmark_group("resnet18_forward_b1_224");
    group.sample_size(20);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            pool.install(|| b.iter(|| no_grad(|| model.forward(&x)).expect("forward")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_resnet18);
criterion_main!(benches);
