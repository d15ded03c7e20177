//! An opt-in, per-thread profiler: where the time of a training step goes, by op.
//!
//! While [`enable`]d on a thread, it accumulates a [`Duration`] per `(op, pass)` from two
//! places only, so no op has to time itself:
//! - **forward**: every op records its result through one function; the time since the
//!   previous op was recorded (or since [`mark`]) is that op's forward time — a lap clock.
//!   Ops that record nothing (work done under [`crate::no_grad`] still records) fold into
//!   the next op's lap, so call [`mark`] before a forward pass.
//! - **backward**: the backward pass runs each op's closure inside a [`span`], timed
//!   directly. A span nested in another (the convolution's input, weight and bias gradients,
//!   inside its backward) is subtracted from the outer one, so entries never overlap.
//!
//! Callers time their own phases with [`span`] too (`bench train` times the optimizer
//! step). Laps stop while a span runs, and the lap clock restarts when it ends. The
//! profiler only reads clocks: results are the same bits with it on or off. Disabled, it
//! costs one thread-local flag load per op.
//!
//! ```
//! use ventral_autograd::{Tensor, profile};
//!
//! profile::enable();
//! let x = Tensor::from_vec(vec![-1.0, 2.0], [2])?.with_grad();
//! x.relu()?.sum_all()?.backward()?;
//! let entries = profile::take();
//! profile::disable();
//! let relu = entries.iter().find(|e| e.op == "relu" && e.pass == profile::Pass::Backward);
//! assert_eq!(relu.map(|e| e.calls), Some(1));
//! # Ok::<(), ventral_autograd::Error>(())
//! ```

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// The span of `conv2d`'s input gradient, nested in its backward.
pub const CONV_INPUT_GRAD: &str = "conv2d.input_grad";
/// The span of `conv2d`'s weight gradient, nested in its backward.
pub const CONV_WEIGHT_GRAD: &str = "conv2d.weight_grad";
/// The span of `conv2d`'s bias gradient, nested in its backward.
pub const CONV_BIAS_GRAD: &str = "conv2d.bias_grad";

/// Which part of a step an [`Entry`] timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pass {
    /// An op's forward computation (the lap up to its recording).
    Forward,
    /// An op's backward closure, or a part of one named by a nested [`span`].
    Backward,
    /// A phase the caller timed with [`span`] (e.g. the optimizer step).
    Other,
}

/// Accumulated time of one `(op, pass)` on this thread since [`enable`] or [`take`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The op's name as recorded (`"conv2d"`), or a span's name (`"conv2d.input_grad"`).
    pub op: &'static str,
    /// Forward, backward or a caller's phase.
    pub pass: Pass,
    /// Total time, excluding any nested span.
    pub time: Duration,
    /// Number of laps or spans added into `time`.
    pub calls: u64,
}

/// The profiler's state on one thread.
struct State {
    entries: Vec<Entry>,
    /// Start of the current forward lap.
    lap_start: Instant,
    /// Open spans: each one's start and the time of spans nested in it so far.
    spans: Vec<(Instant, Duration)>,
}

impl State {
    fn add(&mut self, op: &'static str, pass: Pass, time: Duration) {
        // A step has a few dozen distinct ops: a linear search beats hashing here.
        match self
            .entries
            .iter_mut()
            .find(|e| e.op == op && e.pass == pass)
        {
            Some(e) => {
                e.time += time;
                e.calls += 1;
            }
            None => self.entries.push(Entry {
                op,
                pass,
                time,
                calls: 1,
            }),
        }
    }
}

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Starts profiling on this thread, forgetting anything collected before; starts the lap
/// clock.
pub fn enable() {
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            entries: Vec::new(),
            lap_start: Instant::now(),
            spans: Vec::new(),
        })
    });
    ENABLED.with(|e| e.set(true));
}

/// Stops profiling on this thread and drops what was collected.
pub fn disable() {
    ENABLED.with(|e| e.set(false));
    STATE.with(|s| *s.borrow_mut() = None);
}

/// Whether this thread is profiling.
pub fn is_enabled() -> bool {
    ENABLED.with(Cell::get)
}

/// Returns the entries collected on this thread (in order of first appearance) and
/// starts over; empty if profiling is off.
pub fn take() -> Vec<Entry> {
    STATE.with(|s| {
        s.borrow_mut()
            .as_mut()
            .map(|st| std::mem::take(&mut st.entries))
            .unwrap_or_default()
    })
}

/// Restarts the lap clock: the time since the last op (e.g. spent loading a batch) is
/// not charged to the next op.
pub fn mark() {
    if !is_enabled() {
        return;
    }
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut() {
            st.lap_start = Instant::now();
        }
    });
}

/// Charges the time since the previous lap to `op`'s forward pass (called where every op
/// records its result). Nothing happens inside a span.
pub(crate) fn forward_lap(op: &'static str) {
    if !is_enabled() {
        return;
    }
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut()
            && st.spans.is_empty()
        {
            let now = Instant::now();
            let lap = now - st.lap_start;
            st.lap_start = now;
            st.add(op, Pass::Forward, lap);
        }
    });
}

/// Runs `f`, charging its time (minus that of spans nested in it) to `(op, pass)` when
/// profiling is on; just runs `f` otherwise.
pub fn span<R>(op: &'static str, pass: Pass, f: impl FnOnce() -> R) -> R {
    if !is_enabled() {
        return f();
    }
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut() {
            st.spans.push((Instant::now(), Duration::ZERO));
        }
    });
    // The state is not borrowed while `f` runs: it may open spans and record ops.
    let result = f();
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut()
            && let Some((start, nested)) = st.spans.pop()
        {
            let now = Instant::now();
            let total = now - start;
            st.add(op, pass, total.saturating_sub(nested));
            if let Some(outer) = st.spans.last_mut() {
                outer.1 += total;
            }
            st.lap_start = now;
        }
    });
    result
}
