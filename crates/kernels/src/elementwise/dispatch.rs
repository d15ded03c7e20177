//! How every streaming kernel is vectorised, dispatched and split across threads.
//!
//! The per-element work is a plain Rust closure. [`map1`] and [`map2`] walk the slices in
//! fixed chunks of [`LANES`] elements, which LLVM turns into SIMD code, followed by a scalar
//! tail that calls the same closure. [`with_isa`] compiles that loop a second time inside a
//! `#[target_feature(enable = "avx2,fma")]` function, so the AVX2 build of the loop is chosen at
//! run time without `RUSTFLAGS`. Neither path uses fused multiply-add (Rust never contracts
//! `a * b + c`), so both paths perform the same IEEE operations and give the same bits.
//!
//! Above [`PARALLEL_MIN_ELEMS`] elements the slices are cut into [`TASK_ELEMS`]-element pieces
//! handed to the current rayon pool. Each element is computed by the same code whatever piece
//! it lands in, so results never depend on the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::isa::Isa;

/// Elements per unrolled chunk: two AVX2 registers, or four SSE registers.
pub(crate) const LANES: usize = 16;

/// Below this many elements a streaming kernel stays on the calling thread: 64 Ki elements
/// is 256 KiB per operand and at least ~10 µs of work even for the cheapest op, several times
/// the cost of waking another thread.
pub(crate) const PARALLEL_MIN_ELEMS: usize = 1 << 16;

/// Elements per parallel task: 16 Ki floats (64 KiB) keeps each task's operands in L2.
pub(crate) const TASK_ELEMS: usize = 1 << 14;

/// Whether a job of `elems` elements is worth splitting across the current pool.
pub(crate) fn go_parallel(elems: usize) -> bool {
    elems >= PARALLEL_MIN_ELEMS && rayon::current_num_threads() > 1
}

/// Runs `body` compiled for `isa`: inside an AVX2+FMA function when the CPU has AVX2 and FMA
/// and `isa` asks for it (every AVX-512 CPU has both; the AVX-512 path reuses the AVX2 loop),
/// otherwise as portable code.
///
/// `body` must be `#[inline(always)]` (closures accept the attribute) so that it, and the
/// `#[inline(always)]` loops it calls, are compiled with the wrapper's target features.
#[inline(always)]
pub(crate) fn with_isa<R>(isa: Isa, body: impl FnOnce() -> R) -> R {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma | Isa::Avx512 if Isa::Avx2Fma.is_supported() => {
            // SAFETY: `run_avx2` only requires AVX2 and FMA, which `is_supported` has just
            // confirmed on this CPU.
            unsafe { run_avx2(body) }
        }
        _ => body(),
    }
}

/// Calls `body` with AVX2 and FMA enabled for everything inlined into it.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// `y[i] = f(x[i])`: fixed-size chunks of [`LANES`], then a scalar tail. Lengths must agree.
#[inline(always)]
pub(crate) fn map1(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32) {
    let (xc, xt) = x.as_chunks::<LANES>();
    let (yc, yt) = y.as_chunks_mut::<LANES>();
    for (xa, ya) in xc.iter().zip(yc) {
        // Copy in, compute, copy out: all loads precede all stores, which lets LLVM use
        // full-width vectors without proving that x and y do not overlap.
        let xs = *xa;
        let mut out = [0.0; LANES];
        for (o, v) in out.iter_mut().zip(xs) {
            *o = f(v);
        }
        *ya = out;
    }
    for (yv, &xv) in yt.iter_mut().zip(xt) {
        *yv = f(xv);
    }
}

/// `y[i] = f(a[i], b[i])`: fixed-size chunks of [`LANES`], then a scalar tail. Lengths must
/// agree.
#[inline(always)]
pub(crate) fn map2(a: &[f32], b: &[f32], y: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    let (ac, at) = a.as_chunks::<LANES>();
    let (bc, bt) = b.as_chunks::<LANES>();
    let (yc, yt) = y.as_chunks_mut::<LANES>();
    for ((aa, ba), ya) in ac.iter().zip(bc).zip(yc) {
        // As in `map1`: all loads, then all stores.
        let (xs, ys) = (*aa, *ba);
        let mut out = [0.0; LANES];
        for ((o, u), v) in out.iter_mut().zip(xs).zip(ys) {
            *o = f(u, v);
        }
        *ya = out;
    }
    for ((yv, &av), &bv) in yt.iter_mut().zip(at).zip(bt) {
        *yv = f(av, bv);
    }
}

/// [`map1`] on `isa`, split across the current rayon pool above [`PARALLEL_MIN_ELEMS`].
pub(crate) fn par_map1<F>(isa: Isa, x: &[f32], y: &mut [f32], f: F)
where
    F: Fn(f32) -> f32 + Copy + Send + Sync,
{
    if go_parallel(x.len()) {
        x.par_chunks(TASK_ELEMS)
            .zip(y.par_chunks_mut(TASK_ELEMS))
            .for_each(|(xc, yc)| {
                with_isa(
                    isa,
                    #[inline(always)]
                    || map1(xc, yc, f),
                )
            });
    } else {
        with_isa(
            isa,
            #[inline(always)]
            || map1(x, y, f),
        );
    }
}

/// [`map2`] on `isa`, split across the current rayon pool above [`PARALLEL_MIN_ELEMS`].
pub(crate) fn par_map2<F>(isa: Isa, a: &[f32], b: &[f32], y: &mut [f32], f: F)
where
    F: Fn(f32, f32) -> f32 + Copy + Send + Sync,
{
    if go_parallel(a.len()) {
        a.par_chunks(TASK_ELEMS)
            .zip(b.par_chunks(TASK_ELEMS))
            .zip(y.par_chunks_mut(TASK_ELEMS))
            .for_each(|((ac, bc), yc)| {
                with_isa(
                    isa,
                    #[inline(always)]
                    || map2(ac, bc, yc, f),
                )
            });
    } else {
        with_isa(
            isa,
            #[inline(always)]
            || map2(a, b, y, f),
        );
    }
}

/// [`map2`] into `N` fresh outputs at once, each receiving every `f(a[i], b[i])`: every
/// element of every output is written (the chunks and the tail cover the slices), so the
/// caller may treat them as initialised. Lengths must agree.
#[inline(always)]
fn map2_uninit<const N: usize>(
    a: &[f32],
    b: &[f32],
    outs: [&mut [MaybeUninit<f32>]; N],
    f: impl Fn(f32, f32) -> f32,
) {
    let n = a.len();
    assert!(b.len() == n && outs.iter().all(|o| o.len() == n));
    let (ac, at) = a.as_chunks::<LANES>();
    let (bc, bt) = b.as_chunks::<LANES>();
    let mut outs = outs.map(|o| o.as_chunks_mut::<LANES>());
    for (i, (aa, ba)) in ac.iter().zip(bc).enumerate() {
        // As in `map1`: all loads, then all stores.
        let (xs, ys) = (*aa, *ba);
        let mut out = [0.0; LANES];
        for ((o, u), v) in out.iter_mut().zip(xs).zip(ys) {
            *o = f(u, v);
        }
        for (chunks, _) in &mut outs {
            chunks[i] = out.map(MaybeUninit::new);
        }
    }
    for (i, (&av, &bv)) in at.iter().zip(bt).enumerate() {
        let v = f(av, bv);
        for (_, tail) in &mut outs {
            tail[i] = MaybeUninit::new(v);
        }
    }
}

/// `f(a[i], b[i])` into `N` new vectors holding the same values, written in one pass without
/// clearing them first, split across the current rayon pool as [`par_map2`]. `a` and `b`
/// must have one length. (`N = 2`: the two gradients of a sum, with no second pass to copy
/// one into the other.)
pub(crate) fn par_map2_new<const N: usize, F>(isa: Isa, a: &[f32], b: &[f32], f: F) -> [Vec<f32>; N]
where
    F: Fn(f32, f32) -> f32 + Copy + Send + Sync,
{
    let n = a.len();
    assert_eq!(b.len(), n, "par_map2_new: operand lengths");
    let mut outs: [Vec<f32>; N] = std::array::from_fn(|_| Vec::with_capacity(n));
    let spare = outs.each_mut().map(|v| &mut v.spare_capacity_mut()[..n]);
    if go_parallel(n) {
        // One task per TASK_ELEMS run of the operands, with the same run of every output.
        let mut runs = spare.map(|s| s.chunks_mut(TASK_ELEMS));
        let pieces: Vec<[&mut [MaybeUninit<f32>]; N]> = (0..n.div_ceil(TASK_ELEMS))
            .map(|_| {
                runs.each_mut()
                    .map(|r| r.next().expect("as many runs as the operands"))
            })
            .collect();
        a.par_chunks(TASK_ELEMS)
            .zip(b.par_chunks(TASK_ELEMS))
            .zip(pieces)
            .for_each(|((ac, bc), out)| {
                with_isa(
                    isa,
                    #[inline(always)]
                    || map2_uninit(ac, bc, out, f),
                )
            });
    } else {
        with_isa(
            isa,
            #[inline(always)]
            || map2_uninit(a, b, spare, f),
        );
    }
    for v in &mut outs {
        // SAFETY: `map2_uninit` wrote all `n` elements of every output (the runs cover the
        // first `n` of each vector's capacity).
        unsafe { v.set_len(n) };
    }
    outs
}
