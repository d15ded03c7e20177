//! Peak extra memory of a large convolution, measured with a counting global allocator: the
//! lowered-input buffer is tiled, so it must not grow with the batch.

use std::alloc::System;

use ventral_kernels::alloc_count::CountingAllocator;
use ventral_kernels::conv::{Conv2d, Conv2dParams};

#[global_allocator]
static ALLOCATOR: CountingAllocator<System> = CountingAllocator::new(System);

#[test]
fn vgg_forward_extra_memory_is_at_most_half_of_input_plus_output() {
    // VGG 3x3 conv, 64 -> 64 channels on 56x56, batch 16 (the acceptance layer).
    let conv = Conv2d::new(
        [16, 64, 56, 56],
        [64, 64, 3, 3],
        Conv2dParams::default().padding(1),
    )
    .unwrap();
    let x = vec![0.5f32; 16 * 64 * 56 * 56];
    let w = vec![0.01f32; 64 * 64 * 9];
    let mut y = vec![0.0f32; 16 * 64 * 56 * 56];
    let tensors = (x.len() + y.len()) * 4;
    let before = ALLOCATOR.reset_peak();
    conv.forward(&x, &w, None, &mut y).unwrap();
    let extra = ALLOCATOR.peak() - before;
    println!("extra {extra} bytes for {tensors} bytes of input + output");
    assert!(
        extra * 2 <= tensors,
        "conv forward used {extra} extra bytes; budget is {}",
        tensors / 2
    );
    // The answer is still right: every interior output sees 64 * 9 taps of 0.5 * 0.01.
    let interior = 56 + 1;
    assert!((y[interior] - 64.0 * 9.0 * 0.005).abs() < 1e-3);
}
