//! What `ventral train` shows and writes while the trainer runs: the progress bar,
//! `metrics.jsonl`, the epoch lines, the loss and accuracy plots, and the step budget of
//! `--stop-after-steps`. These run after the trainer has saved the state they describe, and
//! a file that cannot be written is reported in one line without stopping training.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::ProgressBar;
use serde_json::json;
use ventral_train::{Callback, EpochEnd, EpochStart, StepEnd};

use super::history::History;
use crate::report::metrics::MetricsWriter;
use crate::report::progress;

/// The listener of one `ventral train` process.
pub struct Listener {
    /// Whether this process prints and writes (rank 0).
    pub leader: bool,
    /// Hide the progress bar.
    pub quiet: bool,
    /// The run directory (plots).
    pub out: PathBuf,
    /// `metrics.jsonl` (rank 0 only).
    pub metrics: Option<MetricsWriter>,
    /// The curves drawn after every epoch.
    pub history: History,
    /// The trainer's stop flag, set when the step budget is spent.
    pub stop: Arc<AtomicBool>,
    /// `--stop-after-steps`: steps of this invocation before stopping.
    pub budget: Option<u64>,
    steps: u64,
    bar: Option<ProgressBar>,
}

impl Listener {
    /// A listener with no step taken and no bar yet.
    pub fn new(leader: bool, quiet: bool, out: PathBuf, stop: Arc<AtomicBool>) -> Self {
        Self {
            leader,
            quiet,
            out,
            metrics: None,
            history: History::default(),
            stop,
            budget: None,
            steps: 0,
            bar: None,
        }
    }

    /// Leaves the bar where it stopped (a run stopped mid-epoch).
    pub fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }

    /// Records in `metrics.jsonl` that early stopping ended the run after `step` steps.
    pub fn note_early_stop(&mut self, step: u64) {
        self.write_metrics(&json!({"kind": "early_stop", "step": step}));
    }

    fn write_metrics(&mut self, record: &serde_json::Value) {
        if let Some(metrics) = self.metrics.as_mut()
            && let Err(e) = metrics.write(record)
        {
            warn("could not write metrics.jsonl", &e);
        }
    }
}

/// One line on stderr for a listener's failure; training goes on.
fn warn(what: &str, e: &anyhow::Error) {
    eprintln!("ventral: warning: {what}: {e:#}; training goes on (the training state is saved)");
}

impl Callback for Listener {
    fn on_epoch_start(&mut self, e: &EpochStart) {
        let bar = progress::bar(
            e.samples,
            &format!("epoch {}/{}", e.epoch + 1, e.epochs),
            self.quiet || !self.leader,
        );
        bar.set_position(e.seen);
        self.bar = Some(bar);
    }

    fn on_step_end(&mut self, e: &StepEnd) {
        if let Some(bar) = &self.bar {
            bar.inc(e.samples);
            bar.set_message(format!(
                "loss {:.4}  acc {:.2}%",
                e.epoch_loss,
                100.0 * e.epoch_accuracy
            ));
        }
        if e.step.is_multiple_of(100) {
            self.write_metrics(&json!({"kind": "step", "step": e.step, "epoch": e.epoch + 1, "loss": e.loss, "lr": e.lr}));
        }
        self.steps += 1;
        if self.budget.is_some_and(|b| self.steps >= b) {
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    fn on_epoch_end(&mut self, e: &EpochEnd) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let mut record = json!({
            "kind": "epoch", "epoch": e.epoch + 1, "step": e.step,
            "train_loss": e.train_loss, "train_accuracy": e.train_accuracy,
            "test_loss": e.test.loss, "test_accuracy": e.test.accuracy,
            "lr": e.lr, "seconds": e.seconds, "images_per_sec": e.images_per_sec,
        });
        let comm = if e.processes > 1 {
            record["processes"] = json!(e.processes);
            record["communication_share"] = json!(e.communication_share);
            format!(", {:.0} % communication", 100.0 * e.communication_share)
        } else {
            String::new()
        };
        let ema = match &e.ema_test {
            Some(ema) => {
                record["ema_test_loss"] = json!(ema.loss);
                record["ema_test_accuracy"] = json!(ema.accuracy);
                format!(
                    "  |  ema loss {:.4} acc {:6.2}%",
                    ema.loss,
                    100.0 * ema.accuracy
                )
            }
            None => String::new(),
        };
        self.write_metrics(&record);
        println!(
            "epoch {:>3}/{}  train loss {:.4} acc {:6.2}%  |  test loss {:.4} acc {:6.2}%{ema}  |  {:.0} img/s, {:.1} s{comm}",
            e.epoch + 1,
            e.epochs,
            e.train_loss,
            100.0 * e.train_accuracy,
            e.test.loss,
            100.0 * e.test.accuracy,
            e.images_per_sec,
            e.seconds
        );
        self.history.push(
            e.epoch + 1,
            (e.train_loss, e.train_accuracy),
            (e.test.loss, e.test.accuracy),
        );
        if let Err(err) = self.history.plot(&self.out) {
            warn("could not draw the plots", &err);
        }
    }
}
