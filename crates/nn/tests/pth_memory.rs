//! The memory a real `.pth` load takes, alone in its test binary: the counting allocator sees
//! every thread, so in a binary with other tests (the fuzz targets build and drop their seeds
//! outside the fuzz lock) a concurrent free could pull the measured peak below the tensors'
//! own size, as it once did in CI.

mod pth_common;

use std::alloc::System;

use ventral_kernels::alloc_count::CountingAllocator;
use ventral_nn::checkpoint::{self, DType};

#[global_allocator]
static ALLOC: CountingAllocator<System> = CountingAllocator::new(System);

/// Loading a real `.pth` (ResNet-20, 1.1 MB) holds the tensors, one storage at a time and
/// the small pickle: its peak is within a few hundred KiB of the tensors' own size.
#[test]
fn a_pth_loads_in_about_its_tensors_memory() {
    let path = pth_common::fixture("resnet20.pth");
    let before = ALLOC.reset_peak();
    let state = checkpoint::load(&path).unwrap();
    let peak = ALLOC.peak() - before;
    let tensors: usize = state
        .iter()
        .map(|(_, r)| r.data().len() * if r.dtype() == DType::I64 { 8 } else { 4 })
        .sum();
    // The largest storage (layer3's 64x64x3x3 convolutions: 147 KiB) is read while its
    // tensor is built; the pickle, directory and keys take the rest.
    assert!(
        peak >= tensors && peak <= tensors + 512 * 1024,
        "peak {peak} bytes for {tensors} bytes of tensors"
    );
}
