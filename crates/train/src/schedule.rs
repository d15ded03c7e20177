//! The learning rate at each step of a run.

use ventral_nn::optim::Schedule;

/// How the learning rate moves over a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScheduleKind {
    /// A constant learning rate.
    #[default]
    None,
    /// Divide by 10 at 50 % and 75 % of the run.
    Step,
    /// Cosine annealing to zero over the run.
    Cosine,
    /// One cycle (Smith 2018): warm up to the base rate over 30 % of the run, then anneal.
    Onecycle,
}

/// The learning rate for step `step` of `total` with base rate `base`: constant, divided by
/// 10 at 50 % and 75 % of the run (step), cosine-annealed from `base` to 0, or one cycle
/// peaking at `base` (PyTorch's `OneCycleLR` defaults).
pub fn learning_rate(kind: ScheduleKind, base: f32, step: u64, total: u64) -> f32 {
    let progress = step as f64 / total.max(1) as f64;
    match kind {
        ScheduleKind::None => base,
        ScheduleKind::Step => {
            let drops = (progress >= 0.5) as i32 + (progress >= 0.75) as i32;
            base * 0.1f32.powi(drops)
        }
        ScheduleKind::Cosine => {
            (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())) as f32
        }
        ScheduleKind::Onecycle => Schedule::one_cycle(base, total.max(1)).lr_at(base, step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_starts_at_base_halves_midway_and_ends_at_zero() {
        // 0.5 (1 + cos(pi p)): p = 0 -> 1, p = 1/2 -> 1/2, p = 1 -> 0.
        assert_eq!(learning_rate(ScheduleKind::Cosine, 0.1, 0, 100), 0.1);
        assert!((learning_rate(ScheduleKind::Cosine, 0.1, 50, 100) - 0.05).abs() < 1e-7);
        assert!(learning_rate(ScheduleKind::Cosine, 0.1, 100, 100).abs() < 1e-7);
    }

    #[test]
    fn step_drops_tenfold_twice() {
        assert_eq!(learning_rate(ScheduleKind::Step, 1.0, 49, 100), 1.0);
        assert!((learning_rate(ScheduleKind::Step, 1.0, 50, 100) - 0.1).abs() < 1e-7);
        assert!((learning_rate(ScheduleKind::Step, 1.0, 75, 100) - 0.01).abs() < 1e-7);
        assert_eq!(learning_rate(ScheduleKind::None, 0.3, 99, 100), 0.3);
    }
}
