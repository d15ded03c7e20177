//! Learning-rate schedules against their formulas (PyTorch's closed forms), and scheduler
//! state save/restore.

use std::f64::consts::PI;

use ventral_nn::checkpoint::{load, save};
use ventral_nn::optim::{LrScheduler, Optimizer, Schedule, Sgd, SgdConfig};

#[track_caller]
fn assert_lrs(schedule: &Schedule, base: f32, expected: &[(u64, f64)]) {
    schedule.validate().unwrap();
    for &(t, e) in expected {
        let lr = f64::from(schedule.lr_at(base, t));
        assert!(
            (lr - e).abs() <= 1e-6 * e.abs().max(1e-3),
            "step {t}: {lr} vs {e} ({schedule:?})"
        );
    }
}

#[test]
fn step_lr() {
    // 1 · 0.5^⌊t / 3⌋: 1 for t < 3, 0.5 for 3 ≤ t < 6, 0.25 at 6.
    assert_lrs(
        &Schedule::step(3, 0.5),
        1.0,
        &[(0, 1.0), (2, 1.0), (3, 0.5), (5, 0.5), (6, 0.25)],
    );
}

#[test]
fn multi_step_lr() {
    // 2 · 0.1^k, k = milestones ≤ t (milestones 2 and 5): 2, 2, 0.2, 0.2, 0.2, 0.02.
    assert_lrs(
        &Schedule::multi_step(vec![2, 5], 0.1),
        2.0,
        &[
            (0, 2.0),
            (1, 2.0),
            (2, 0.2),
            (4, 0.2),
            (5, 0.02),
            (100, 0.02),
        ],
    );
}

#[test]
fn cosine_annealing() {
    // η_min + (1 − η_min)(1 + cos(π t / 10)) / 2 with η_min = 0.1: 1 at 0, 0.55 at 5 (cos = 0),
    // 0.1 at 10; at 2: 0.1 + 0.45 (1 + cos(0.2π)) = 0.1 + 0.45 · 1.809017 = 0.9140576.
    let expected_2 = 0.1 + 0.45 * (1.0 + (0.2 * PI).cos());
    assert_lrs(
        &Schedule::cosine(10, 0.1),
        1.0,
        &[(0, 1.0), (2, expected_2), (5, 0.55), (10, 0.1)],
    );
}

#[test]
fn linear_warmup() {
    // 0.5 · (0.25 + 0.75 · min(t, 4) / 4): 0.125, 0.21875, 0.3125, 0.40625, 0.5, then 0.5.
    assert_lrs(
        &Schedule::linear_warmup(0.25, 4),
        0.5,
        &[
            (0, 0.125),
            (1, 0.21875),
            (2, 0.3125),
            (3, 0.40625),
            (4, 0.5),
            (9, 0.5),
        ],
    );
}

#[test]
fn one_cycle() {
    // max_lr 1, 10 steps, PyTorch's defaults: initial 1 / 25 = 0.04, final 0.04 / 1e4 = 4e-6.
    // Phase 1 ends at 0.3 · 10 − 1 = 2, phase 2 at 10 − 1 = 9; cos annealing from a to b at
    // fraction p is b + (a − b)(1 + cos(π p)) / 2.
    // t0: 0.04; t1: p = ½, 1 + (0.04 − 1) / 2 = 0.52; t2: 1;
    // t3: p = 1/7, 4e-6 + (1 − 4e-6)(1 + cos(π/7)) / 2; t9: 4e-6;
    // t10 (PyTorch's last allowed step): p = 8/7, 4e-6 + (1 − 4e-6)(1 + cos(8π/7)) / 2.
    let down = |p: f64| 4e-6 + (1.0 - 4e-6) * (1.0 + (PI * p).cos()) / 2.0;
    assert_lrs(
        &Schedule::one_cycle(1.0, 10),
        0.123, // ignored
        &[
            (0, 0.04),
            (1, 0.52),
            (2, 1.0),
            (3, down(1.0 / 7.0)),
            (6, down(4.0 / 7.0)),
            (9, 4e-6),
            (10, down(8.0 / 7.0)),
            (50, 4e-6),
        ],
    );
    // Phases that would be empty are refused.
    assert_refused(
        Schedule::one_cycle(1.0, 3).validate(),
        "OneCycleLR needs max_lr >= 0, positive divisors, and both phases non-empty",
    );
}

#[test]
fn sequential_warmup_then_cosine() {
    // Warm-up 0.1 → 1 over 5 steps, then cosine over 10 steps restarted at step 5:
    // t4: 0.1 + 0.9 · 4/5 = 0.82; t5: cos(0) → 1; t10: cos(π/2) → 0.5; t15: 0.
    let s = Schedule::Sequential {
        schedules: vec![Schedule::linear_warmup(0.1, 5), Schedule::cosine(10, 0.0)],
        milestones: vec![5],
    };
    assert_lrs(
        &s,
        1.0,
        &[(0, 0.1), (4, 0.82), (5, 1.0), (10, 0.5), (15, 0.0)],
    );
    let bad = Schedule::Sequential {
        schedules: vec![Schedule::Constant],
        milestones: vec![5],
    };
    assert_refused(
        bad.validate(),
        "SequentialLR needs one milestone fewer than its 1 schedules",
    );
}

/// Asserts `result` is the learning-rate-schedule configuration error containing `needle`.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: ventral_nn::Result<T>, needle: &str) {
    match result {
        Err(ventral_nn::Error::Config {
            what: "learning-rate schedule",
            detail,
        }) if detail.contains(needle) => {}
        other => panic!("expected a schedule error containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn invalid_schedules_are_refused() {
    let mut opt = Sgd::new(SgdConfig::new(0.1)).unwrap();
    for (s, needle) in [
        (Schedule::step(0, 0.5), "StepLR needs step_size > 0"),
        (
            Schedule::multi_step(vec![5, 2], 0.1),
            "MultiStepLR needs increasing milestones",
        ),
        (
            Schedule::cosine(0, 0.0),
            "CosineAnnealingLR needs T_max > 0",
        ),
        (
            Schedule::linear_warmup(0.0, 5),
            "LinearLR needs start_factor in (0, 1]",
        ),
        (
            Schedule::linear_warmup(0.5, 0),
            "LinearLR needs start_factor in (0, 1], end_factor in [0, 1] and total_iters > 0, got 0.5, 1, 0",
        ),
    ] {
        assert_refused(LrScheduler::new(s.clone(), &mut opt), needle);
    }
}

#[test]
fn scheduler_drives_the_optimizer_and_resumes_from_its_state() {
    let schedule = Schedule::cosine(8, 0.0);
    let mut opt = Sgd::new(SgdConfig::new(0.2)).unwrap();
    let mut sched = LrScheduler::new(schedule.clone(), &mut opt).unwrap();
    let mut straight = vec![opt.learning_rate()];
    for _ in 0..6 {
        sched.step(&mut opt);
        straight.push(opt.learning_rate());
    }
    // 0.2 (1 + cos(π t / 8)) / 2 at t = 4: 0.1.
    assert!((straight[4] - 0.1).abs() < 1e-7, "{straight:?}");

    // Three steps, save, restore into fresh objects (whose rate starts at 0.2 again), three
    // more: the same rates.
    let mut opt = Sgd::new(SgdConfig::new(0.2)).unwrap();
    let mut sched = LrScheduler::new(schedule.clone(), &mut opt).unwrap();
    for _ in 0..3 {
        sched.step(&mut opt);
    }
    let dir = std::env::temp_dir().join(format!("ventral-sched-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sched.safetensors");
    save(&path, &sched.state_dict()).unwrap();
    let mut opt = Sgd::new(SgdConfig::new(0.2)).unwrap();
    let mut resumed = LrScheduler::new(schedule, &mut opt).unwrap();
    resumed
        .load_state_dict(&load(&path).unwrap(), &mut opt)
        .unwrap();
    assert_eq!(resumed.last_step(), 3);
    assert_eq!(opt.learning_rate(), straight[3]);
    for &expected in &straight[4..] {
        resumed.step(&mut opt);
        assert_eq!(opt.learning_rate(), expected);
    }
    let err = resumed
        .load_state_dict(&ventral_nn::checkpoint::StateDict::new(), &mut opt)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "scheduler state: no scalar `base_lr` entry of the right dtype"
    );
}
