//! Early stopping (`--early-stop PATIENCE`), as PyTorch Lightning's `EarlyStopping`
//! callback with `min_delta = 0`: after every epoch's evaluation the monitored value (the
//! test loss by default, mode `min`; or the test accuracy, mode `max`) either improves on
//! the best so far, strictly, which resets the count, or counts one more epoch without
//! improvement; once `patience` epochs in a row have not improved, the run ends after that
//! epoch's checkpoints. A NaN value never improves. The best value and the count are part
//! of the training state, so a resumed run stops where an unbroken one would.

use crate::error::{Result, TrainError};
use crate::evaluate::Evaluation;

/// What early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Monitor {
    /// The test loss, lower is better (Lightning's usual `monitor="val_loss"`, `mode="min"`).
    #[default]
    Loss,
    /// The test accuracy, higher is better.
    Accuracy,
}

/// When to stop a run that no longer improves, and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement after which the run stops (at least 1).
    pub patience: u64,
    /// The value watched.
    pub monitor: Monitor,
    /// The best value so far (`+inf` for the loss, `-inf` for the accuracy before the first
    /// evaluation).
    pub best: f64,
    /// Epochs in a row since the best.
    pub wait: u64,
}

impl EarlyStopping {
    /// Stops after `patience` epochs in a row without improvement of `monitor`.
    pub fn new(patience: u64, monitor: Monitor) -> Self {
        let best = match monitor {
            Monitor::Loss => f64::INFINITY,
            Monitor::Accuracy => f64::NEG_INFINITY,
        };
        Self {
            patience,
            monitor,
            best,
            wait: 0,
        }
    }

    /// Fails unless the patience is at least 1.
    pub(crate) fn check(&self) -> Result<()> {
        if self.patience == 0 {
            return Err(TrainError::Config(
                "early stopping needs a patience of at least 1 epoch, got 0".into(),
            ));
        }
        Ok(())
    }

    /// The watched value of `eval`.
    pub fn value(&self, eval: &Evaluation) -> f64 {
        match self.monitor {
            Monitor::Loss => eval.loss,
            Monitor::Accuracy => eval.accuracy,
        }
    }

    /// Takes one epoch's evaluation into account.
    pub fn observe(&mut self, eval: &Evaluation) {
        let value = self.value(eval);
        let improved = match self.monitor {
            Monitor::Loss => value < self.best,
            Monitor::Accuracy => value > self.best,
        };
        if improved {
            self.best = value;
            self.wait = 0;
        } else {
            self.wait += 1;
        }
    }

    /// Whether the run should stop now.
    pub fn should_stop(&self) -> bool {
        self.wait >= self.patience
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ventral_nn::metrics::Confusion;

    fn eval(loss: f64, accuracy: f64) -> Evaluation {
        Evaluation {
            loss,
            accuracy,
            confusion: Confusion::new(2),
        }
    }

    #[test]
    fn loss_must_strictly_improve_within_patience() {
        let mut e = EarlyStopping::new(2, Monitor::Loss);
        e.observe(&eval(1.0, 0.5));
        assert_eq!((e.best, e.wait, e.should_stop()), (1.0, 0, false));
        // Equal is not better (min_delta 0, strict), NaN never is.
        e.observe(&eval(1.0, 0.9));
        assert_eq!((e.wait, e.should_stop()), (1, false));
        e.observe(&eval(0.5, 0.1));
        assert_eq!((e.best, e.wait), (0.5, 0));
        e.observe(&eval(f64::NAN, 0.1));
        e.observe(&eval(0.7, 0.1));
        assert_eq!((e.best, e.wait, e.should_stop()), (0.5, 2, true));
    }

    #[test]
    fn accuracy_is_watched_upwards() {
        let mut e = EarlyStopping::new(1, Monitor::Accuracy);
        e.observe(&eval(9.0, 0.5));
        e.observe(&eval(0.1, 0.6));
        assert_eq!((e.best, e.should_stop()), (0.6, false));
        e.observe(&eval(0.0, 0.6));
        assert!(e.should_stop());
    }
}
