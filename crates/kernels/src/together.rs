//! Parallel sections whose threads leave together.
//!
//! A rayon worker with nothing to do spins a few microseconds and then sleeps; waking it
//! again costs tens of microseconds on a virtual machine. A parallel section whose blocks end
//! a little apart puts the early thread to sleep, the next section waits for it to wake,
//! and the late start makes the next end uneven too: every call of a back-to-back series of
//! products paid the wake-up. On a 2-core Xeon (Firecracker guest) a join of two equal
//! 700 µs halves took 1.4 µs longer than the halves with the workers awake, and 30-75 µs
//! once a worker had idled 20 µs. Here a thread that finishes its block waits, spinning,
//! for the blocks still running on other threads, so all of them return to rayon at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

/// The longest a finished thread spins for the others: long enough to cover the uneven ends
/// of a product's blocks (tens to hundreds of microseconds), short enough that a block
/// held up by the operating system does not keep a core busy for long.
const LINGER: Duration = Duration::from_millis(2);

/// Spins between two looks at the clock.
const SPINS_PER_CLOCK: u32 = 256;

/// Runs `block(0..blocks)` on the current rayon pool, each block once, returning when all
/// have run; a thread that finishes a block when every block has started waits (up to
/// [`LINGER`]) for the others to finish, so that the threads leave together. While blocks
/// are still to start, it goes back to rayon for one of them.
pub(crate) fn for_each_block(blocks: usize, block: impl Fn(usize) + Sync) {
    let section = Section::new(blocks);
    (0..blocks).into_par_iter().for_each(|index| {
        section.enter();
        block(index);
        section.leave(LINGER);
    });
}

/// Counts of the blocks of a parallel section that have started and that have finished.
struct Section {
    blocks: usize,
    started: AtomicUsize,
    finished: AtomicUsize,
}

impl Section {
    /// A section of `blocks` blocks, none started.
    fn new(blocks: usize) -> Section {
        Section {
            blocks,
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
        }
    }

    /// Marks a block as started.
    fn enter(&self) {
        self.started.fetch_add(1, Ordering::AcqRel);
    }

    /// Marks a block as finished and, once every block has started, waits up to `linger`
    /// until every block has finished. The blocks it waits for are running on other
    /// threads, so the wait ends.
    fn leave(&self, linger: Duration) {
        self.finished.fetch_add(1, Ordering::AcqRel);
        if self.started.load(Ordering::Acquire) < self.blocks {
            return;
        }
        let since = Instant::now();
        let mut spins = 0u32;
        while self.finished.load(Ordering::Acquire) < self.blocks {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(SPINS_PER_CLOCK) && since.elapsed() > linger {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Every block runs exactly once, on one thread or several, with more blocks than
    /// threads and with fewer.
    #[test]
    fn runs_every_block_once() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for blocks in [0, 1, 2, 5, 17] {
                let runs = Mutex::new(vec![0; blocks]);
                pool.install(|| for_each_block(blocks, |i| runs.lock().unwrap()[i] += 1));
                assert_eq!(
                    runs.into_inner().unwrap(),
                    vec![1; blocks],
                    "{threads} threads, {blocks} blocks"
                );
            }
        }
    }

    /// A thread that leaves early waits for a block still running on another thread, and
    /// only for a while: it returns after the slow block ends where that comes first, and
    /// after about the linger where it does not. With a block not yet started, it does not
    /// wait at all (it may be the thread to run it).
    #[test]
    fn leaving_waits_for_the_running_blocks_for_a_while() {
        let cases = [
            // (blocks started, the slow block's time, the linger, whether the early thread
            // sees it end)
            (2, Duration::from_millis(1), Duration::from_secs(30), true),
            (
                2,
                Duration::from_millis(300),
                Duration::from_millis(1),
                false,
            ),
            (
                1,
                Duration::from_millis(300),
                Duration::from_secs(30),
                false,
            ),
        ];
        for (started, slow, linger, waits_for_it) in cases {
            let section = Section::new(3);
            let slow_done = AtomicUsize::new(0);
            // A third block, already finished.
            section.enter();
            section.leave(linger);
            std::thread::scope(|scope| {
                for _ in 0..started {
                    section.enter();
                }
                scope.spawn(|| {
                    std::thread::sleep(slow);
                    slow_done.store(1, Ordering::Release);
                    if started == 2 {
                        section.leave(linger);
                    }
                });
                let since = Instant::now();
                section.leave(linger);
                let (waited, saw_done) = (since.elapsed(), slow_done.load(Ordering::Acquire));
                if waits_for_it {
                    assert_eq!(
                        saw_done, 1,
                        "left {waited:?} in, before the slow block ended"
                    );
                } else {
                    assert!(
                        saw_done == 0 && (started < 2 || waited >= linger),
                        "left after {waited:?} (linger {linger:?}); slow block done: {saw_done}"
                    );
                }
            });
        }
    }
}
