//! The profiler's accounting: which `(op, pass)` entries a small graph yields, that nested
//! spans are not counted twice, that nothing is collected when it is off, and that it does
//! not change results. No assertion is made on how long anything takes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ventral_autograd::profile::{self, Entry, Pass};
use ventral_autograd::{Conv2dParams, Result, Tensor, no_grad};

/// conv2d (with bias) → relu → sum, and the backward pass; returns the input's gradient.
fn small_step() -> Result<Vec<f32>> {
    let x = Tensor::rand_normal([2, 3, 6, 6], 0.0, 1.0, 1)?.with_grad();
    let w = Tensor::rand_normal([4, 3, 3, 3], 0.0, 0.5, 2)?.with_grad();
    let b = Tensor::rand_normal([4], 0.0, 0.5, 3)?.with_grad();
    let loss = x
        .conv2d(&w, Some(&b), Conv2dParams::default())?
        .relu()?
        .sum_all()?;
    let grads = loss.backward()?;
    Ok(grads.get(&x).expect("x requires a gradient").to_vec())
}

fn keys(entries: &[Entry]) -> BTreeSet<(&'static str, Pass)> {
    entries.iter().map(|e| (e.op, e.pass)).collect()
}

#[test]
fn a_small_graph_yields_exactly_its_ops() -> Result<()> {
    profile::enable();
    small_step()?;
    let entries = profile::take();
    let again = profile::take();
    profile::disable();
    // The three ops' forward laps and backward closures, and the convolution's three nested
    // gradient spans; leaves (rand_normal, with_grad) record no op.
    let expected: BTreeSet<_> = [
        ("conv2d", Pass::Forward),
        ("relu", Pass::Forward),
        ("sum", Pass::Forward),
        ("sum", Pass::Backward),
        ("relu", Pass::Backward),
        ("conv2d", Pass::Backward),
        (profile::CONV_INPUT_GRAD, Pass::Backward),
        (profile::CONV_WEIGHT_GRAD, Pass::Backward),
        (profile::CONV_BIAS_GRAD, Pass::Backward),
    ]
    .into();
    assert_eq!(keys(&entries), expected, "entries: {entries:?}");
    assert_eq!(
        entries.len(),
        expected.len(),
        "one entry per key: {entries:?}"
    );
    for e in &entries {
        assert_eq!(e.calls, 1, "each op ran once: {e:?}");
    }
    assert!(again.is_empty(), "take starts over: {again:?}");
    Ok(())
}

#[test]
fn disabled_collects_nothing() -> Result<()> {
    small_step()?;
    assert!(!profile::is_enabled());
    assert!(profile::take().is_empty());
    profile::enable();
    profile::disable();
    small_step()?;
    assert!(profile::take().is_empty());
    Ok(())
}

#[test]
fn repeated_steps_accumulate_calls() -> Result<()> {
    profile::enable();
    for _ in 0..3 {
        small_step()?;
    }
    let entries = profile::take();
    profile::disable();
    assert_eq!(entries.len(), 9, "{entries:?}");
    assert!(entries.iter().all(|e| e.calls == 3), "{entries:?}");
    Ok(())
}

/// Spins (reading the clock, not sleeping) until `d` has passed.
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn nested_spans_are_not_counted_twice() {
    profile::enable();
    let wall = Instant::now();
    profile::span("outer", Pass::Other, || {
        profile::span("inner", Pass::Other, || spin(Duration::from_millis(5)));
    });
    let wall = wall.elapsed();
    let entries = profile::take();
    profile::disable();
    let time = |op: &str| entries.iter().find(|e| e.op == op).map(|e| e.time);
    let (outer, inner) = (time("outer").unwrap(), time("inner").unwrap());
    // The inner span holds the whole 5 ms spin; had the outer one kept it too, the two
    // would add up to at least 10 ms within a wall interval that only has to hold one spin.
    assert!(inner >= Duration::from_millis(5), "{entries:?}");
    assert!(outer + inner <= wall, "{entries:?} within {wall:?}");
}

#[test]
fn ops_inside_a_span_are_charged_to_the_span() -> Result<()> {
    let p = Tensor::ones([4])?;
    profile::enable();
    let wall = Instant::now();
    profile::mark();
    profile::span("optimizer", Pass::Other, || {
        spin(Duration::from_millis(5));
        no_grad(|| p.mul_scalar(0.5))
    })?;
    let y = p.add(&p)?;
    let wall = wall.elapsed();
    let entries = profile::take();
    profile::disable();
    assert_eq!(
        keys(&entries),
        [("optimizer", Pass::Other), ("add", Pass::Forward)].into(),
        "{entries:?}"
    );
    // The lap clock restarts when the span ends: had the add's lap started before the
    // span, the span's 5 ms spin would be counted in both entries.
    let sum: Duration = entries.iter().map(|e| e.time).sum();
    assert!(sum <= wall, "{entries:?} within {wall:?}");
    assert_eq!(y.to_vec(), [2.0; 4]);
    Ok(())
}

#[test]
fn profiling_does_not_change_results() -> Result<()> {
    let off = small_step()?;
    profile::enable();
    let on = small_step()?;
    profile::disable();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&off), bits(&on));
    Ok(())
}
