//! Per-epoch history for the loss and accuracy plots, and `metrics.jsonl` on resume.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;
use ventral_nn::checkpoint::write_atomically;

use crate::report::plot::{Labels, Series, line_chart};

/// Train and test curves, one point per finished epoch.
#[derive(Default)]
pub struct History {
    train_loss: Vec<(f64, f64)>,
    test_loss: Vec<(f64, f64)>,
    train_acc: Vec<(f64, f64)>,
    test_acc: Vec<(f64, f64)>,
}

impl History {
    /// Adds epoch `epoch` (from 1); accuracies are fractions.
    pub fn push(&mut self, epoch: u64, train: (f64, f64), test: (f64, f64)) {
        let e = epoch as f64;
        self.train_loss.push((e, train.0));
        self.train_acc.push((e, 100.0 * train.1));
        self.test_loss.push((e, test.0));
        self.test_acc.push((e, 100.0 * test.1));
    }

    /// Draws `loss.png` and `accuracy.png` into `out`.
    ///
    /// # Errors
    /// If a file cannot be written.
    pub fn plot(&self, out: &Path) -> Result<()> {
        let series = |name: &str, points: &[(f64, f64)]| Series {
            name: name.into(),
            points: points.to_vec(),
        };
        line_chart(
            &out.join("loss.png"),
            Labels {
                title: "Loss",
                x: "epoch",
                y: "loss per sample",
            },
            &[
                series("train", &self.train_loss),
                series("test", &self.test_loss),
            ],
        )?;
        line_chart(
            &out.join("accuracy.png"),
            Labels {
                title: "Accuracy",
                x: "epoch",
                y: "accuracy (%)",
            },
            &[
                series("train", &self.train_acc),
                series("test", &self.test_acc),
            ],
        )
    }
}

/// Keeps the records of `metrics.jsonl` up to step `step` (dropping any written after the
/// saved state, e.g. by a run killed without saving) and rebuilds the history from its
/// epoch records.
///
/// # Errors
/// If the file cannot be rewritten.
pub fn trim_metrics(path: &Path, step: u64) -> Result<History> {
    let mut history = History::default();
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(history);
    };
    let mut kept = String::new();
    for line in text.lines() {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if record["step"].as_u64().is_some_and(|s| s > step) {
            continue;
        }
        if record["kind"] == "epoch" {
            let f = |k: &str| record[k].as_f64().unwrap_or(f64::NAN);
            history.push(
                record["epoch"].as_u64().unwrap_or(0),
                (f("train_loss"), f("train_accuracy")),
                (f("test_loss"), f("test_accuracy")),
            );
        }
        kept.push_str(line);
        kept.push('\n');
    }
    write_atomically(path, kept.as_bytes())
        .with_context(|| format!("could not rewrite {}", path.display()))?;
    Ok(history)
}
