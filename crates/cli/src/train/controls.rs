//! The training controls of `ventral train` (`--accumulate`, `--label-smoothing`, `--ema`,
//! `--early-stop`): checked before anything is written, then handed to the [`Trainer`].

use anyhow::{Result, bail};
use clap::ValueEnum;
use ventral_train::{Monitor, Trainer};

use super::args::{EarlyStopMetric, LossKind, TrainArgs};

/// Fails on a combination of controls no run can use (label smoothing with a loss other
/// than cross-entropy; a metric for early stopping without `--early-stop`).
///
/// # Errors
/// One line naming the flags.
pub fn check(args: &TrainArgs) -> Result<()> {
    if args.label_smoothing.is_some_and(|e| e > 0.0) && args.loss != LossKind::CrossEntropy {
        let loss = args
            .loss
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string());
        bail!("--label-smoothing applies to --loss cross-entropy only, not --loss {loss}");
    }
    Ok(())
}

/// `trainer` with the controls `args` asks for.
pub fn apply(mut trainer: Trainer, args: &TrainArgs) -> Trainer {
    if let Some(n) = args.accumulate {
        trainer = trainer.with_accumulate(n as usize);
    }
    if let Some(epsilon) = args.label_smoothing {
        trainer = trainer.with_label_smoothing(epsilon);
    }
    if let Some(decay) = args.ema {
        trainer = trainer.with_ema(decay);
    }
    if let Some(patience) = args.early_stop {
        let monitor = match args.early_stop_metric {
            EarlyStopMetric::Loss => Monitor::Loss,
            EarlyStopMetric::Accuracy => Monitor::Accuracy,
        };
        trainer = trainer.with_early_stopping(patience, monitor);
    }
    trainer
}

/// The line `ventral train` prints when early stopping ended the run.
pub fn early_stop_note(trainer: &Trainer, args: &TrainArgs) -> Option<String> {
    let early = trainer.early_stopping()?;
    let (what, best) = match early.monitor {
        Monitor::Loss => ("test loss", format!("{:.4}", early.best)),
        Monitor::Accuracy => ("test accuracy", format!("{:.2}%", 100.0 * early.best)),
    };
    Some(format!(
        "early stop: the {what} has not improved for {} epochs (--early-stop {}; best {best}) after step {}",
        early.wait,
        args.early_stop.unwrap_or_default(),
        trainer.steps()
    ))
}
