//! Learning-rate schedules: PyTorch's `StepLR`, `MultiStepLR`, `CosineAnnealingLR`,
//! `LinearLR` (linear warm-up), `OneCycleLR` and `SequentialLR`, as closed-form functions of
//! the step count, plus an [`LrScheduler`] that drives an optimizer and saves its state.
//!
//! Each schedule is a pure function `lr_at(base_lr, t)` (PyTorch's `_get_closed_form_lr`, in
//! f64), so resuming needs only the step count: the same `t` always gives the same rate.

use super::Optimizer;
use crate::checkpoint::{StateDict, TensorData, TensorRecord};
use crate::error::{Error, Result};

/// A learning-rate schedule: the rate at step `t` (0 before the first `step()`) as a function
/// of the optimizer's initial rate `base_lr`.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `base_lr` throughout.
    Constant,
    /// `StepLR`: `base_lr · γ^⌊t / step_size⌋`.
    Step {
        /// Steps between decays (> 0).
        step_size: u64,
        /// Decay factor.
        gamma: f32,
    },
    /// `MultiStepLR`: `base_lr · γ^k`, `k` = number of milestones `≤ t`.
    MultiStep {
        /// Steps at which to decay, increasing.
        milestones: Vec<u64>,
        /// Decay factor.
        gamma: f32,
    },
    /// `CosineAnnealingLR`: `η_min + (base_lr − η_min) · (1 + cos(π t / T_max)) / 2`.
    Cosine {
        /// Half-period `T_max` (> 0): the rate reaches `η_min` at `t = T_max`.
        t_max: u64,
        /// The minimum rate `η_min`.
        eta_min: f32,
    },
    /// `LinearLR`, the linear warm-up: `base_lr · (s + (e − s) · min(t, T) / T)`.
    LinearWarmup {
        /// Factor `s` at step 0, in `(0, 1]`.
        start_factor: f32,
        /// Factor `e` from step `T` on, in `[0, 1]`.
        end_factor: f32,
        /// Steps `T` (> 0) to go from `s` to `e`.
        total_iters: u64,
    },
    /// `OneCycleLR` (Smith 2018) with cosine annealing, two phases: from
    /// `max_lr / div_factor` up to `max_lr` over the first `pct_start · total_steps − 1`
    /// steps, then down to `max_lr / (div_factor · final_div_factor)` at step
    /// `total_steps − 1`. Ignores `base_lr`, as PyTorch does. Beyond `total_steps` (where
    /// PyTorch raises) it stays at the final rate. Momentum is not cycled.
    OneCycle {
        /// The peak rate.
        max_lr: f32,
        /// Length of the cycle (steps).
        total_steps: u64,
        /// Fraction of the cycle spent increasing (PyTorch: 0.3).
        pct_start: f32,
        /// Initial rate = `max_lr / div_factor` (PyTorch: 25).
        div_factor: f32,
        /// Final rate = initial rate / `final_div_factor` (PyTorch: 1e4).
        final_div_factor: f32,
    },
    /// `SequentialLR`: `schedules[k]` from `milestones[k − 1]` on, restarted at its own step
    /// 0 (e.g. a linear warm-up, then cosine annealing).
    Sequential {
        /// The schedules, in order.
        schedules: Vec<Schedule>,
        /// Steps at which to switch to the next schedule: one fewer than `schedules`,
        /// increasing.
        milestones: Vec<u64>,
    },
}

impl Schedule {
    /// `StepLR(step_size, gamma)`.
    pub fn step(step_size: u64, gamma: f32) -> Self {
        Self::Step { step_size, gamma }
    }

    /// `MultiStepLR(milestones, gamma)`.
    pub fn multi_step(milestones: Vec<u64>, gamma: f32) -> Self {
        Self::MultiStep { milestones, gamma }
    }

    /// `CosineAnnealingLR(T_max, eta_min)`.
    pub fn cosine(t_max: u64, eta_min: f32) -> Self {
        Self::Cosine { t_max, eta_min }
    }

    /// A linear warm-up from `start_factor · base_lr` to `base_lr` over `steps` steps
    /// (`LinearLR(start_factor, 1.0, steps)`).
    pub fn linear_warmup(start_factor: f32, steps: u64) -> Self {
        Self::LinearWarmup {
            start_factor,
            end_factor: 1.0,
            total_iters: steps,
        }
    }

    /// `OneCycleLR(max_lr, total_steps)` with PyTorch's defaults (`pct_start = 0.3`,
    /// `div_factor = 25`, `final_div_factor = 1e4`).
    pub fn one_cycle(max_lr: f32, total_steps: u64) -> Self {
        Self::OneCycle {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }

    /// Checks the parameters make a well-defined schedule.
    ///
    /// # Errors
    /// [`Error::Config`] naming the parameter: a zero period, a non-finite or negative
    /// factor, unsorted milestones, a one-cycle whose phases are empty.
    pub fn validate(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::config("learning-rate schedule", detail));
        let finite = |x: f32| x.is_finite() && x >= 0.0;
        match self {
            Self::Constant => Ok(()),
            Self::Step { step_size, gamma } => {
                if *step_size == 0 || !finite(*gamma) {
                    return bad(format!(
                        "StepLR needs step_size > 0 and gamma >= 0, got {step_size}, {gamma}"
                    ));
                }
                Ok(())
            }
            Self::MultiStep { milestones, gamma } => {
                if !milestones.is_sorted() || !finite(*gamma) {
                    return bad(format!(
                        "MultiStepLR needs increasing milestones and gamma >= 0, got {milestones:?}, {gamma}"
                    ));
                }
                Ok(())
            }
            Self::Cosine { t_max, eta_min } => {
                if *t_max == 0 || !finite(*eta_min) {
                    return bad(format!(
                        "CosineAnnealingLR needs T_max > 0 and eta_min >= 0, got {t_max}, {eta_min}"
                    ));
                }
                Ok(())
            }
            Self::LinearWarmup {
                start_factor,
                end_factor,
                total_iters,
            } => {
                let ok = *start_factor > 0.0
                    && *start_factor <= 1.0
                    && (0.0..=1.0).contains(end_factor)
                    && *total_iters > 0;
                if !ok {
                    return bad(format!(
                        "LinearLR needs start_factor in (0, 1], end_factor in [0, 1] and \
                         total_iters > 0, got {start_factor}, {end_factor}, {total_iters}"
                    ));
                }
                Ok(())
            }
            Self::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let up_end = f64::from(*pct_start) * *total_steps as f64 - 1.0;
                let down_end = *total_steps as f64 - 1.0;
                let ok = finite(*max_lr)
                    && *div_factor > 0.0
                    && div_factor.is_finite()
                    && *final_div_factor > 0.0
                    && final_div_factor.is_finite()
                    && (0.0..=1.0).contains(pct_start)
                    && up_end > 0.0
                    && down_end > up_end;
                if !ok {
                    return bad(format!(
                        "OneCycleLR needs max_lr >= 0, positive divisors, and both phases \
                         non-empty (pct_start · total_steps > 1 and < total_steps), got \
                         max_lr {max_lr}, total_steps {total_steps}, pct_start {pct_start}"
                    ));
                }
                Ok(())
            }
            Self::Sequential {
                schedules,
                milestones,
            } => {
                if schedules.is_empty()
                    || milestones.len() + 1 != schedules.len()
                    || !milestones.is_sorted()
                {
                    return bad(format!(
                        "SequentialLR needs one milestone fewer than its {} schedules, \
                         increasing, got {milestones:?}",
                        schedules.len()
                    ));
                }
                schedules.iter().try_for_each(Schedule::validate)
            }
        }
    }

    /// The learning rate at step `t` for an optimizer whose initial rate is `base_lr`.
    pub fn lr_at(&self, base_lr: f32, t: u64) -> f32 {
        self.lr_at_f64(f64::from(base_lr), t) as f32
    }

    fn lr_at_f64(&self, base: f64, t: u64) -> f64 {
        use std::f64::consts::PI;
        match self {
            Self::Constant => base,
            Self::Step { step_size, gamma } => {
                let k = t / (*step_size).max(1);
                base * f64::from(*gamma).powi(k.min(i32::MAX as u64) as i32)
            }
            Self::MultiStep { milestones, gamma } => {
                let k = milestones.iter().filter(|&&m| m <= t).count();
                base * f64::from(*gamma).powi(k as i32)
            }
            Self::Cosine { t_max, eta_min } => {
                let eta_min = f64::from(*eta_min);
                let phase = PI * t as f64 / (*t_max).max(1) as f64;
                eta_min + (base - eta_min) * (1.0 + phase.cos()) / 2.0
            }
            Self::LinearWarmup {
                start_factor,
                end_factor,
                total_iters,
            } => {
                let (s, e) = (f64::from(*start_factor), f64::from(*end_factor));
                let total = (*total_iters).max(1);
                base * (s + (e - s) * t.min(total) as f64 / total as f64)
            }
            Self::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let max_lr = f64::from(*max_lr);
                let initial = max_lr / f64::from(*div_factor);
                let min_lr = initial / f64::from(*final_div_factor);
                let up_end = f64::from(*pct_start) * *total_steps as f64 - 1.0;
                let down_end = *total_steps as f64 - 1.0;
                // cos annealing from `a` to `b` at fraction `pct`.
                let anneal =
                    |a: f64, b: f64, pct: f64| b + (a - b) / 2.0 * (1.0 + (PI * pct).cos());
                if t > *total_steps {
                    min_lr
                } else if t as f64 <= up_end {
                    anneal(initial, max_lr, t as f64 / up_end)
                } else {
                    anneal(max_lr, min_lr, (t as f64 - up_end) / (down_end - up_end))
                }
            }
            Self::Sequential {
                schedules,
                milestones,
            } => {
                let k = milestones.iter().filter(|&&m| m <= t).count();
                let start = if k == 0 { 0 } else { milestones[k - 1] };
                schedules
                    .get(k)
                    .map_or(base, |s| s.lr_at_f64(base, t - start))
            }
        }
    }
}

/// Drives an optimizer's learning rate along a [`Schedule`], as PyTorch's `LRScheduler`:
/// construction sets the rate for step 0, and each [`LrScheduler::step`] (called after the
/// optimizer's step) advances it.
///
/// ```
/// use ventral_nn::optim::{LrScheduler, Optimizer, Schedule, Sgd, SgdConfig};
///
/// let mut opt = Sgd::new(SgdConfig::new(0.1))?;
/// let mut sched = LrScheduler::new(Schedule::step(2, 0.5), &mut opt)?;
/// let mut lrs = vec![opt.learning_rate()];
/// for _ in 0..4 {
///     // … forward, backward, opt.step(…) …
///     sched.step(&mut opt);
///     lrs.push(opt.learning_rate());
/// }
/// assert_eq!(lrs, [0.1, 0.1, 0.05, 0.05, 0.025]);
/// # Ok::<(), ventral_nn::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LrScheduler {
    schedule: Schedule,
    base_lr: f32,
    step: u64,
}

impl LrScheduler {
    /// A scheduler for `optimizer`, whose current rate becomes `base_lr`; sets the rate of
    /// step 0.
    ///
    /// # Errors
    /// [`Error::Config`] if the schedule is invalid ([`Schedule::validate`]).
    pub fn new(schedule: Schedule, optimizer: &mut dyn Optimizer) -> Result<Self> {
        schedule.validate()?;
        let s = Self {
            schedule,
            base_lr: optimizer.learning_rate(),
            step: 0,
        };
        optimizer.set_learning_rate(s.lr());
        Ok(s)
    }

    /// Advances one step and sets the optimizer's rate for it.
    pub fn step(&mut self, optimizer: &mut dyn Optimizer) {
        self.step += 1;
        optimizer.set_learning_rate(self.lr());
    }

    /// The rate for the current step.
    pub fn lr(&self) -> f32 {
        self.schedule.lr_at(self.base_lr, self.step)
    }

    /// Steps taken (PyTorch's `last_epoch`).
    pub fn last_step(&self) -> u64 {
        self.step
    }

    /// The optimizer's rate when the scheduler was made.
    pub fn base_lr(&self) -> f32 {
        self.base_lr
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The scheduler's state: `base_lr` (F32 scalar) and `last_epoch` (I64 scalar). The
    /// schedule itself is configuration and is not saved.
    pub fn state_dict(&self) -> StateDict {
        let mut state = StateDict::new();
        let scalar = |name: &str, data| TensorRecord::new(name, vec![], data).expect("scalar");
        state.insert(
            "base_lr",
            scalar("base_lr", TensorData::F32(vec![self.base_lr])),
        );
        state.insert(
            "last_epoch",
            scalar("last_epoch", TensorData::I64(vec![self.step as i64])),
        );
        state
    }

    /// Restores state saved by [`LrScheduler::state_dict`] and sets `optimizer`'s rate for
    /// the restored step (optimizer state dicts do not hold the rate).
    ///
    /// # Errors
    /// [`Error::Config`] if an entry is missing, of the wrong dtype, or negative.
    pub fn load_state_dict(
        &mut self,
        state: &StateDict,
        optimizer: &mut dyn Optimizer,
    ) -> Result<()> {
        let missing = |what: &str| {
            Error::config(
                "scheduler state",
                format!("no scalar `{what}` entry of the right dtype"),
            )
        };
        let base_lr = state
            .get("base_lr")
            .and_then(|r| r.as_f32())
            .and_then(|v| (v.len() == 1).then_some(v[0]))
            .ok_or_else(|| missing("base_lr"))?;
        let step = state
            .get("last_epoch")
            .and_then(|r| r.as_i64())
            .and_then(|v| (v.len() == 1).then_some(v[0]))
            .ok_or_else(|| missing("last_epoch"))?;
        let step = u64::try_from(step)
            .map_err(|_| Error::config("scheduler state", format!("negative last_epoch {step}")))?;
        self.base_lr = base_lr;
        self.step = step;
        optimizer.set_learning_rate(self.lr());
        Ok(())
    }
}
