//! The graph keeps an activation alive only while some op saved it for its backward: an
//! intermediate that was merely read (a batch-norm output feeding a ReLU, which saves its own
//! output) is freed during the forward pass. Measured with a counting allocator, alone in its
//! own test binary so no other test's allocations are counted.

use std::alloc::System;

use ventral_autograd::Tensor;
use ventral_kernels::alloc_count::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator<System> = CountingAllocator::new(System);

fn live() -> usize {
    ALLOCATOR.live()
}

#[test]
fn only_saved_activations_outlive_the_forward_pass() {
    const N: usize = 1 << 16;
    const LAYERS: usize = 16;
    let bytes = N * size_of::<f32>();
    let x = Tensor::rand_normal([N], 0.0, 1.0, 7).unwrap().with_grad();

    let before = live();
    let mut h = x.clone();
    for _ in 0..LAYERS {
        // `mul_scalar` saves nothing and ReLU saves its output, so each layer keeps one
        // activation; the scaled tensor between them must be freed.
        h = h.mul_scalar(0.9).unwrap().relu().unwrap();
    }
    let loss = h.sum_all().unwrap();
    let kept = live() - before;
    assert!(
        kept >= LAYERS * bytes,
        "the ReLU outputs are needed for backward: {kept} bytes kept, expected at least {}",
        LAYERS * bytes
    );
    assert!(
        kept < (LAYERS + 2) * bytes,
        "{kept} bytes kept after the forward pass: more than the {LAYERS} saved activations \
         of {bytes} bytes (intermediates pinned by the graph?)"
    );

    let at_backward = ALLOCATOR.reset_peak();
    let grads = loss.backward().unwrap();
    let extra = ALLOCATOR.peak() - at_backward;
    assert!(
        extra < 4 * bytes,
        "backward allocated {extra} bytes above the forward's memory: more than a few \
         gradients in flight"
    );
    // The graph is gone: what remains is `h` (held here), the gradient of `x`, and small change.
    let remaining = live() - before;
    assert!(
        remaining < 3 * bytes,
        "{remaining} bytes left after backward"
    );

    let g = grads.get(&x).unwrap().to_vec();
    let xs = x.to_vec();
    for (i, (&g, &x)) in g.iter().zip(&xs).enumerate().step_by(997) {
        let want = if x > 0.0 {
            0.9f32.powi(LAYERS as i32)
        } else {
            0.0
        };
        assert!((g - want).abs() <= 1e-6, "dx[{i}] = {g}, want {want}");
    }
}
