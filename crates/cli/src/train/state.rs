//! The training state saved after every epoch and on Ctrl-C (`train_state.safetensors`):
//! everything `--resume` needs to continue bit-identically.
//!
//! One safetensors file, written atomically:
//!
//! | key | dtype, shape | holds |
//! |---|---|---|
//! | `model.<name>` | as the model's state dict | weights, buffers, counters |
//! | `optimizer.<name>` | as the optimizer's state dict | step count, momentum / moment buffers |
//! | `epoch` | I64 `[]` | the epoch in progress, from 0 (= epochs finished when `next_batch` is 0) |
//! | `next_batch` | I64 `[]` | the first batch of `epoch` not yet trained on |
//! | `step` | I64 `[]` | optimizer steps taken over the whole run (drives the schedule) |
//! | `seed` | I64 `[]` | the run's seed (its bits) |
//! | `order` | I64 `[len]` | `epoch`'s visiting order of the training set |
//! | `best_accuracy`, `epoch_loss_sum` | I64 `[]` | f64 values stored by their bits |
//! | `epoch_correct`, `epoch_seen` | I64 `[]` | the running train accuracy of `epoch` |

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use ventral_nn::checkpoint::{self, StateDict, TensorData, TensorRecord};

/// The file name inside a run directory.
pub const STATE_FILE: &str = "train_state.safetensors";

const MODEL: &str = "model.";
const OPTIMIZER: &str = "optimizer.";

/// Where a run stands.
#[derive(Debug, Clone)]
pub struct TrainState {
    /// The model's state dict.
    pub model: StateDict,
    /// The optimizer's state dict.
    pub optimizer: StateDict,
    /// The epoch in progress, from 0.
    pub epoch: u64,
    /// The next batch of `epoch` to train on.
    pub next_batch: usize,
    /// Optimizer steps so far.
    pub step: u64,
    /// The run's seed.
    pub seed: u64,
    /// `epoch`'s visiting order.
    pub order: Vec<usize>,
    /// Best test accuracy so far (`-inf` before the first evaluation).
    pub best_accuracy: f64,
    /// Σ loss · samples over `epoch`'s batches so far.
    pub epoch_loss_sum: f64,
    /// Correct predictions over `epoch`'s batches so far.
    pub epoch_correct: u64,
    /// Samples over `epoch`'s batches so far.
    pub epoch_seen: u64,
}

fn scalar(state: &mut StateDict, name: &str, value: i64) {
    let record = TensorRecord::new(name, vec![], TensorData::I64(vec![value]))
        .expect("one value for a scalar");
    state.insert(name, record);
}

fn read_scalar(state: &StateDict, name: &str) -> Result<i64> {
    state
        .get(name)
        .and_then(|r| r.as_i64())
        .and_then(|v| v.first().copied())
        .ok_or_else(|| anyhow!("no `{name}` entry"))
}

impl TrainState {
    /// Writes the state to `path` atomically (the previous file stays whole until the new
    /// one is complete).
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut state = StateDict::new();
        for (prefix, part) in [(MODEL, &self.model), (OPTIMIZER, &self.optimizer)] {
            for (name, record) in part.iter() {
                state.insert(format!("{prefix}{name}"), record.clone());
            }
        }
        scalar(&mut state, "epoch", self.epoch as i64);
        scalar(&mut state, "next_batch", self.next_batch as i64);
        scalar(&mut state, "step", self.step as i64);
        scalar(&mut state, "seed", self.seed as i64);
        scalar(
            &mut state,
            "best_accuracy",
            self.best_accuracy.to_bits() as i64,
        );
        scalar(
            &mut state,
            "epoch_loss_sum",
            self.epoch_loss_sum.to_bits() as i64,
        );
        scalar(&mut state, "epoch_correct", self.epoch_correct as i64);
        scalar(&mut state, "epoch_seen", self.epoch_seen as i64);
        let order = self.order.iter().map(|&i| i as i64).collect();
        let record = TensorRecord::new("order", vec![self.order.len()], TensorData::I64(order))
            .expect("one value per position");
        state.insert("order", record);
        checkpoint::save(path, &state)
            .with_context(|| format!("could not save the training state {}", path.display()))
    }

    /// Reads a state written by [`save`](Self::save).
    ///
    /// # Errors
    /// If the file is missing, corrupt, or lacks an entry.
    pub fn load(path: &Path) -> Result<Self> {
        let all = checkpoint::load(path)?;
        let part = |prefix: &str| {
            let mut out = StateDict::new();
            for (name, record) in all.iter() {
                if let Some(rest) = name.strip_prefix(prefix) {
                    out.insert(rest, record.clone());
                }
            }
            out
        };
        let read = |name: &str| {
            read_scalar(&all, name)
                .with_context(|| format!("{} is not a Ventral training state", path.display()))
        };
        let order = all
            .get("order")
            .and_then(|r| r.as_i64())
            .ok_or_else(|| anyhow!("{} has no `order` entry", path.display()))?
            .iter()
            .map(|&i| usize::try_from(i))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{}: a negative index in `order`", path.display()))?;
        Ok(Self {
            model: part(MODEL),
            optimizer: part(OPTIMIZER),
            epoch: read("epoch")? as u64,
            next_batch: read("next_batch")? as usize,
            step: read("step")? as u64,
            seed: read("seed")? as u64,
            order,
            best_accuracy: f64::from_bits(read("best_accuracy")? as u64),
            epoch_loss_sum: f64::from_bits(read("epoch_loss_sum")? as u64),
            epoch_correct: read("epoch_correct")? as u64,
            epoch_seen: read("epoch_seen")? as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field() {
        let mut model = StateDict::new();
        let w = TensorRecord::new("fc.weight", vec![2], TensorData::F32(vec![1.5, -2.0])).unwrap();
        model.insert("fc.weight", w);
        let state = TrainState {
            model,
            optimizer: StateDict::new(),
            epoch: 3,
            next_batch: 7,
            step: 123,
            seed: u64::MAX,
            order: vec![2, 0, 1],
            best_accuracy: f64::NEG_INFINITY,
            epoch_loss_sum: 0.1,
            epoch_correct: 5,
            epoch_seen: 9,
        };
        let dir = std::env::temp_dir().join(format!("ventral-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(STATE_FILE);
        state.save(&path).unwrap();
        let back = TrainState::load(&path).unwrap();
        assert_eq!(
            back.model.get("fc.weight").unwrap().as_f32().unwrap(),
            &[1.5, -2.0]
        );
        assert!(back.optimizer.is_empty());
        assert_eq!(
            (back.epoch, back.next_batch, back.step, back.seed),
            (3, 7, 123, u64::MAX)
        );
        assert_eq!(back.order, vec![2, 0, 1]);
        assert_eq!(back.best_accuracy, f64::NEG_INFINITY);
        assert_eq!(back.epoch_loss_sum, 0.1);
        assert_eq!((back.epoch_correct, back.epoch_seen), (5, 9));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
