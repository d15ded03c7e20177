//! Autograd overhead: a LeNet-5 training step (forward, cross-entropy, backward; batch 64)
//! through the autograd graph, next to the same kernel calls in the same order made directly
//! on buffers allocated once (`ventral_benches::lenet_step`). Both start from the model's own
//! initialisation (seed 0) and the same input, and before anything is timed the direct
//! path's loss and every parameter gradient are checked bit-equal to autograd's. The
//! difference is what the graph costs: recording nodes, allocating every result, copying
//! gradients that pass through.
//!
//! Both run under mimalloc, the allocator of the `ventral` binary that trains (see
//! `crates/cli/src/main.rs`): under the system allocator every large result of the graph is
//! handed back to the kernel and faulted in again each step, which `ventral train` never pays.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use ventral_benches::lenet_step::LeNetKernelStep;
use ventral_benches::random_vec;
use ventral_models::LeNet5;
use ventral_nn::{Module, Tensor, loss};

const BATCH: usize = 64;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let autograd_step = || {
        let logits = model.forward(&input).expect("LeNet-5 runs");
        let l = loss::cross_entropy(&logits, &labels, 0.0).expect("labels fit");
        l.backward().expect("backward runs")
    };
    interleaved_overhead(&autograd_step, &mut step);
    let mut group = c.benchmark_group("autograd_overhead/lenet5_b64");
    group.bench_function("autograd_forward_backward", |b| b.iter(autograd_step));
    group.bench_function("kernels_only", |b| b.iter(|| step.run()));
    group.finish();
}

/// Steps measured in alternation, so both paths see the same machine state: on a shared
/// machine the load drifts between criterion's two separate measurements by more than the
/// overhead itself.
const PAIRS: usize = 201;

/// Prints the median time of each path over [`PAIRS`] alternating steps and the median of the
/// paired differences (autograd minus direct), the overhead.
fn interleaved_overhead<T>(autograd_step: &impl Fn() -> T, step: &mut LeNetKernelStep) {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed().as_secs_f64() * 1e3
    };
    let (mut ours, mut direct, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..PAIRS + 1 {
        let a = time(&mut || drop(black_box(autograd_step())));
        let d = time(&mut || step.run());
        if i > 0 {
            // The first pair warms both up.
            ours.push(a);
            direct.push(d);
            diff.push(a - d);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, d, o) = (median(&mut ours), median(&mut direct), median(&mut diff));
    eprintln!(
        "interleaved, {PAIRS} pairs: autograd {a:.3} ms, direct {d:.3} ms (medians); \
         overhead {o:.3} ms per step ({:.1}% of autograd's step, median of paired differences)",
        100.0 * o / a
    );
}

criterion_group!(benches, bench_overhead);
criterion_main!(benches);
