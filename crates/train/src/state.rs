//! The training state saved at the start of a run, every `save_every` steps, after every
//! epoch and on a stop request (`train_state.safetensors`): everything a resumed run needs
//! to continue bit-identically.
//!
//! One safetensors file, written atomically:
//!
//! | key | dtype, shape | holds |
//! |---|---|---|
//! | `model.<name>` | as the model's training state | weights, buffers, counters, random streams |
//! | `optimizer.<name>` | as the optimizer's state dict | step count, momentum / moment buffers |
//! | `epoch` | I64 `[]` | the epoch in progress, from 0 (= epochs finished when `next_batch` is 0) |
//! | `next_batch` | I64 `[]` | the first batch of `epoch` not yet trained on |
//! | `step` | I64 `[]` | optimizer steps taken over the whole run (drives the schedule) |
//! | `seed` | I64 `[]` | the run's seed (its bits) |
//! | `order` | I64 `[len]` | `epoch`'s visiting order of the training set |
//! | `best_accuracy`, `epoch_loss_sum` | I64 `[]` | f64 values stored by their bits |
//! | `epoch_correct`, `epoch_seen` | I64 `[]` | the running train accuracy of `epoch` |
//! | `ema.<name>` | F32, as the model's | the averaged weights (only with an EMA) |
//! | `early_stop_best`, `early_stop_wait` | I64 `[]` | early stopping's best value (f64 bits) and epochs without improvement (only with early stopping) |
//!
//! [`TrainState::load`] refuses a file with any other key, or with one of these of another
//! dtype or shape; [`TrainState::check`] then holds every value against the model,
//! optimizer and data it is meant for, so a corrupt file is refused whole, in one line
//! naming the tensor, before anything is restored.

use std::path::{Path, PathBuf};

use ventral_nn::checkpoint::{self, DType, StateDict, TensorData, TensorRecord};
use ventral_nn::{Module, training_state};

use crate::error::{Result, TrainError};

/// The file name inside a run directory.
pub const STATE_FILE: &str = "train_state.safetensors";

const MODEL: &str = "model.";
const OPTIMIZER: &str = "optimizer.";
const EMA: &str = "ema.";
/// The entries of early stopping, present only when it is on.
const EARLY: [&str; 2] = ["early_stop_best", "early_stop_wait"];
/// The scalar entries, in the order they are written.
const SCALARS: [&str; 8] = [
    "epoch",
    "next_batch",
    "step",
    "seed",
    "best_accuracy",
    "epoch_loss_sum",
    "epoch_correct",
    "epoch_seen",
];

/// Where a run stands.
#[derive(Debug, Clone)]
pub struct TrainState {
    /// The model's training state ([`ventral_nn::training_state`]).
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
    /// The exponential moving average of the weights, under the model's names (`None`:
    /// the run keeps none).
    pub ema: Option<StateDict>,
    /// Early stopping's best value and epochs without improvement (`None`: not on).
    pub early_stop: Option<(f64, u64)>,
}

fn scalar(state: &mut StateDict, name: &str, value: i64) {
    let record = TensorRecord::new(name, vec![], TensorData::I64(vec![value]))
        .expect("one value for a scalar");
    state.insert(name, record);
}

impl TrainState {
    /// Writes the state to `path` atomically (the previous file stays whole until the new
    /// one is complete).
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut state = StateDict::new();
        let empty = StateDict::new();
        let ema = self.ema.as_ref().unwrap_or(&empty);
        for (prefix, part) in [
            (MODEL, &self.model),
            (OPTIMIZER, &self.optimizer),
            (EMA, ema),
        ] {
            for (name, record) in part.iter() {
                state.insert(format!("{prefix}{name}"), record.clone());
            }
        }
        let values = [
            self.epoch as i64,
            self.next_batch as i64,
            self.step as i64,
            self.seed as i64,
            self.best_accuracy.to_bits() as i64,
            self.epoch_loss_sum.to_bits() as i64,
            self.epoch_correct as i64,
            self.epoch_seen as i64,
        ];
        for (name, value) in SCALARS.iter().zip(values) {
            scalar(&mut state, name, value);
        }
        if let Some((best, wait)) = self.early_stop {
            for (name, value) in EARLY.iter().zip([best.to_bits() as i64, wait as i64]) {
                scalar(&mut state, name, value);
            }
        }
        let order = self.order.iter().map(|&i| i as i64).collect();
        let record = TensorRecord::new("order", vec![self.order.len()], TensorData::I64(order))
            .expect("one value per position");
        state.insert("order", record);
        checkpoint::save(path, &state)?;
        Ok(())
    }

    /// Reads a state written by [`save`](Self::save), strictly: every scalar entry must be
    /// an I64 of shape `[]`, `order` an I64 vector, the counts not negative, and there must
    /// be no key outside the table of the module docs.
    ///
    /// # Errors
    /// [`TrainError::BadState`] naming the entry, or the checkpoint's own errors.
    pub fn load(path: &Path) -> Result<Self> {
        let all = checkpoint::load(path)?;
        let bad = |detail: String| TrainError::BadState {
            path: path.to_path_buf(),
            detail,
        };
        if let Some(key) = all.keys().find(|k| {
            !(k.starts_with(MODEL)
                || k.starts_with(OPTIMIZER)
                || k.starts_with(EMA)
                || SCALARS.contains(k)
                || EARLY.contains(k))
                && *k != "order"
        }) {
            return Err(bad(format!(
                "unexpected entry `{key}`: not a Ventral training state"
            )));
        }
        let part = |prefix: &str| {
            let mut out = StateDict::new();
            for (name, record) in all.iter() {
                if let Some(rest) = name.strip_prefix(prefix) {
                    out.insert(rest, record.clone());
                }
            }
            out
        };
        let read = |name: &str| -> Result<i64> {
            let record = all
                .get(name)
                .ok_or_else(|| bad(format!("no `{name}` entry: not a Ventral training state")))?;
            match (record.dtype(), record.shape(), record.as_i64()) {
                (DType::I64, [], Some([v])) => Ok(*v),
                _ => Err(bad(format!(
                    "`{name}` is {} of shape {:?}; a training state holds an I64 scalar",
                    record.dtype(),
                    record.shape()
                ))),
            }
        };
        // Counts and positions: stored as i64, never negative.
        let count = |name: &str| -> Result<u64> {
            let v = read(name)?;
            u64::try_from(v).map_err(|_| bad(format!("`{name}` is {v}, below 0")))
        };
        let order_record = all
            .get("order")
            .ok_or_else(|| bad("no `order` entry: not a Ventral training state".into()))?;
        let order = match (order_record.shape(), order_record.as_i64()) {
            ([_], Some(values)) => values
                .iter()
                .map(|&i| {
                    usize::try_from(i).map_err(|_| bad(format!("`order` holds {i}, below 0")))
                })
                .collect::<Result<Vec<_>>>()?,
            _ => {
                return Err(bad(format!(
                    "`order` is {} of shape {:?}; a training state holds an I64 vector",
                    order_record.dtype(),
                    order_record.shape()
                )));
            }
        };
        let ema = part(EMA);
        let early_stop = if EARLY.iter().any(|k| all.get(k).is_some()) {
            let wait = count("early_stop_wait")?;
            Some((f64::from_bits(read("early_stop_best")? as u64), wait))
        } else {
            None
        };
        let state = Self {
            ema: (!ema.is_empty()).then_some(ema),
            early_stop,
            model: part(MODEL),
            optimizer: part(OPTIMIZER),
            epoch: count("epoch")?,
            next_batch: count("next_batch")? as usize,
            step: count("step")?,
            seed: read("seed")? as u64,
            order,
            best_accuracy: f64::from_bits(read("best_accuracy")? as u64),
            epoch_loss_sum: f64::from_bits(read("epoch_loss_sum")? as u64),
            epoch_correct: count("epoch_correct")?,
            epoch_seen: count("epoch_seen")?,
        };
        if state.epoch_correct > state.epoch_seen {
            return Err(bad(format!(
                "`epoch_correct` is {}, more than `epoch_seen` ({})",
                state.epoch_correct, state.epoch_seen
            )));
        }
        Ok(state)
    }

    /// Checks the state against the run it is to continue: `model`'s training state
    /// (every key, dtype and shape), a training set of `samples` samples in `batches`
    /// batches of at most `batch_size` (`order` a permutation of `0..samples`, `next_batch`
    /// at most `batches`, `epoch_seen` at most the samples of the batches done). The
    /// optimizer's part is checked by [`ventral_nn::Optimizer::load_state_dict`] before it
    /// changes anything. `path` names the file in errors.
    ///
    /// # Errors
    /// [`TrainError::BadState`] naming the first tensor that does not fit.
    pub fn check(
        &self,
        path: &Path,
        model: &mut dyn Module,
        samples: usize,
        batches: usize,
        batch_size: usize,
    ) -> Result<()> {
        let bad = |detail: String| TrainError::BadState {
            path: PathBuf::from(path),
            detail,
        };
        let expected = training_state(model);
        self.model
            .check_matches(expected.iter().map(|(k, r)| (k, r.shape(), r.dtype())))
            .map_err(|e| bad(format!("the model part does not fit the model: {e}")))?;
        if self.next_batch > batches {
            return Err(bad(format!(
                "`next_batch` is {}, past the epoch's {batches} batches",
                self.next_batch
            )));
        }
        if self.order.len() != samples {
            return Err(bad(format!(
                "`order` has {} entries for a training set of {samples} samples",
                self.order.len()
            )));
        }
        let mut seen = vec![false; samples];
        if let Some(i) = self
            .order
            .iter()
            .find(|&&i| i >= samples || std::mem::replace(&mut seen[i], true))
        {
            return Err(bad(format!(
                "`order` is not a permutation of 0..{samples} (entry {i})"
            )));
        }
        let most = (self.next_batch as u64).saturating_mul(batch_size as u64);
        if self.epoch_seen > most.min(samples as u64) {
            return Err(bad(format!(
                "`epoch_seen` is {}, more than the {} samples of the epoch's first {} batches",
                self.epoch_seen,
                most.min(samples as u64),
                self.next_batch
            )));
        }
        Ok(())
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
        let mut ema = StateDict::new();
        let e = TensorRecord::new("fc.weight", vec![2], TensorData::F32(vec![0.5, 1.0])).unwrap();
        ema.insert("fc.weight", e);
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
            ema: Some(ema),
            early_stop: Some((0.25, 2)),
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
        let ema = back.ema.expect("the EMA part is kept");
        assert_eq!(ema.get("fc.weight").unwrap().as_f32().unwrap(), &[0.5, 1.0]);
        assert_eq!(back.early_stop, Some((0.25, 2)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
