//! Peak extra memory of a large convolution, measured with a counting global allocator: the
//! lowered-input buffer is tiled, so it must not grow with the batch.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ventral_kernels::conv::{Conv2d, Conv2dParams};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator with the caller's layout unchanged;
// the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    conv.forward(&x, &w, None, &mut y).unwrap();
    let extra = PEAK.load(Ordering::SeqCst) - before;
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
