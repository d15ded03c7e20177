//! A global allocator wrapper that counts the heap bytes in use and their high-water mark.
//!
//! Memory bounds are part of Ventral's contract (a convolution's lowering buffer must not grow
//! with the batch; a graph keeps only the activations its backward needs), and a bound is only
//! trustworthy when a test can fail on it. Install the wrapper in a test binary and compare
//! [`CountingAllocator::peak`] before and after the code under test:
//!
//! ```
//! use std::alloc::System;
//! use ventral_kernels::alloc_count::CountingAllocator;
//!
//! #[global_allocator]
//! static ALLOCATOR: CountingAllocator<System> = CountingAllocator::new(System);
//!
//! let before = ALLOCATOR.reset_peak();
//! let v = vec![0u8; 1 << 20];
//! assert!(ALLOCATOR.peak() - before >= 1 << 20);
//! drop(v);
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Wraps allocator `A`, counting the bytes currently allocated through it and their peak.
///
/// The counters are process-wide (every thread allocates through the one global allocator),
/// so a measurement is exact only while nothing else in the process allocates.
#[derive(Debug)]
pub struct CountingAllocator<A> {
    inner: A,
    live: AtomicUsize,
    peak: AtomicUsize,
    limit: AtomicUsize,
    refused: AtomicUsize,
}

impl<A> CountingAllocator<A> {
    /// Wraps `inner` with zeroed counters (`const`, for a `#[global_allocator]` static).
    pub const fn new(inner: A) -> Self {
        CountingAllocator {
            inner,
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            limit: AtomicUsize::new(usize::MAX),
            refused: AtomicUsize::new(0),
        }
    }

    /// Makes every allocation that would take the live bytes past `bytes` fail (return
    /// null, which aborts an infallible allocation and makes `try_reserve` return an error):
    /// a hard memory cap for a test or fuzz harness, so a blow-up fails the run instead of
    /// exhausting the machine. `usize::MAX` (the initial value) means no cap.
    pub fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::SeqCst);
    }

    /// How many allocations the limit has refused.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Whether `bytes` more fit under the limit; counts a refusal when they do not.
    fn admits(&self, bytes: usize) -> bool {
        let fits = self.live().saturating_add(bytes) <= self.limit.load(Ordering::SeqCst);
        if !fits {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        fits
    }

    /// Bytes allocated and not yet freed.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// The most bytes that were live at once since the last [`CountingAllocator::reset_peak`].
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Starts a new measurement: sets the peak to the bytes live now, and returns them.
    pub fn reset_peak(&self) -> usize {
        let live = self.live();
        self.peak.store(live, Ordering::SeqCst);
        live
    }

    fn grew(&self, bytes: usize) {
        let live = self.live.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(live, Ordering::SeqCst);
    }

    fn shrank(&self, bytes: usize) {
        self.live.fetch_sub(bytes, Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded to `inner` with the caller's pointer and layout unchanged,
// so `inner` upholds the `GlobalAlloc` contract; the counters only observe sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.admits(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !self.admits(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `inner` (through this wrapper) with this layout.
        unsafe { self.inner.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.admits(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's guarantees; `ptr` came from `inner`.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as the new block arriving before the old one leaves: a moving realloc
            // holds both for a moment.
            self.grew(new_size);
            self.shrank(layout.size());
        }
        p
    }
}
