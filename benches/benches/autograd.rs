//! Autograd overhead: a LeNet-5 training step (forward, cross-entropy, backward; batch 64)
//! through the autograd graph, next to the same kernel calls in the same order made directly
//! on buffers allocated once (`ventral_benches::lenet_step`). Both start from the model's own
//! initialisation (seed 0) and the same input, and before anything is timed the direct
//! path's loss and every parameter gradient are checked bit-equal to autograd's. The
//! difference is what the graph costs: recording nodes, allocating every result, copying
//! gradients that pass through.

use criterion::{Criterion, criterion_group, criterion_main};
use ventral_benches::lenet_step::LeNetKernelStep;
use ventral_benches::random_vec;
use ventral_models::LeNet5;
use ventral_nn::{Module, Tensor, loss};

const BATCH: usize = 64;

fn bench_overhead(c: &mut Criterion) {
    let mut model = LeNet5::new(10, 0).expect("valid model");
    let x = random_vec(BATCH * 784, 9);
    let labels: Vec<usize> = (0..BATCH).map(|i| i % 10).collect();
    let mut step = LeNetKernelStep::new(&mut model, x.clone(), labels.clone());
    let diffs = step.check_against_autograd(&mut model);
    assert!(
        diffs.is_empty(),
        "the direct path does not compute what autograd does: {diffs:?}"
    );
    eprintln!(
        "direct path checked: loss {} and all 10 parameter gradients bit-equal to autograd's",
        step.loss()
    );

    let input = Tensor::from_vec(x, [BATCH, 1, 28, 28]).expect("sized");
    let mut group = c.benchmark_group("autograd_overhead/lenet5_b64");
    group.bench_function("autograd_forward_backward", |b| {
        b.iter(|| {
            let logits = model.forward(&input).expect("LeNet-5 runs");
            let l = loss::cross_entropy(&logits, &labels, 0.0).expect("labels fit");
            l.backward().expect("backward runs")
        })
    });
    group.bench_function("kernels_only", |b| b.iter(|| step.run()));
    group.finish();
}

criterion_group!(benches, bench_overhead);
criterion_main!(benches);
