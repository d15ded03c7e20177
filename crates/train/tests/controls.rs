//! The trainer's training controls: gradient accumulation (equal to a bigger batch),
//! label smoothing (PyTorch's definition), the EMA of the weights (the formula, buffers
//! copied, saved and resumed bit for bit) and early stopping (stops, saves, resumes).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ventral_nn::checkpoint;
use ventral_nn::data::{DataLoader, InMemoryDataset};
use ventral_nn::layers::{BatchNorm2d, Flatten, Linear, ReLU, Sequential};
use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_nn::{Init, Tensor, named_parameters, state_dict};
use ventral_train::{
    Callback, EMA_FILE, EpochEnd, FitOptions, Loss, Monitor, STATE_FILE, ScheduleKind, StepData,
    StepEnd, TrainError, TrainState, Trainer,
};

/// `count` points of 4 features in 3 classes (the class of the largest of the first three).
fn dataset(count: u32) -> InMemoryDataset {
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for i in 0..count {
        let v: Vec<f32> = (0..4)
            .map(|k| ((i * 7 + k * 13) % 17) as f32 / 17.0 - 0.5)
            .collect();
        let label = (0..3).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        x.extend(v);
        labels.push(label);
    }
    InMemoryDataset::new([4, 1, 1], x, labels, 3, None).unwrap()
}

/// A two-layer perceptron (with a BatchNorm first when `bn`), SGD with momentum and
/// weight decay, cosine schedule.
fn trainer(lr: f32, bn: bool) -> Trainer {
    let mut init = Init::new(3);
    let mut model = Sequential::new();
    if bn {
        model = model.push(BatchNorm2d::new(4).unwrap());
    }
    let model = model
        .push(Flatten)
        .push(Linear::new(4, 16, true, &mut init).unwrap())
        .push(ReLU)
        .push(Linear::new(16, 3, true, &mut init).unwrap());
    let sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        weight_decay: 1e-3,
        ..SgdConfig::new(lr)
    })
    .unwrap();
    Trainer::new(Box::new(model), Box::new(sgd), 3).with_schedule(ScheduleKind::Cosine)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ventral-controls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(out: Option<&Path>, epochs: u64) -> FitOptions {
    FitOptions {
        epochs,
        out: out.map(Path::to_path_buf),
        save_every: None,
        seed: 5,
    }
}

fn weights(t: &mut Trainer) -> Vec<f32> {
    named_parameters(t.model())
        .iter()
        .flat_map(|(_, p)| p.to_vec())
        .collect()
}

/// The largest |a − b| / max(|a|, |b|, 1e-3) over two weight vectors.
fn max_relative(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let (x, y) = (f64::from(x), f64::from(y));
            (x - y).abs() / x.abs().max(y.abs()).max(1e-3)
        })
        .fold(0.0, f64::max)
}

/// Counts the steps and keeps each step's learning rate.
#[derive(Default)]
struct Steps(Vec<(u64, f32, u64)>);
impl Callback for Steps {
    fn on_step_end(&mut self, e: &StepEnd) {
        self.0.push((e.step, e.lr, e.samples));
    }
}

#[test]
fn accumulating_4_batches_of_8_equals_batches_of_32() {
    // 60 samples: batches of 8 are 7 × 8 + 4, grouped by 4 into 32 + 28 samples, exactly
    // the two batches of a loader of 32 (the same shuffled order: it does not depend on the
    // batch size), so every step, the epoch's shorter last one included, must agree.
    let test = DataLoader::new(dataset(60), 20).unwrap();
    let small = DataLoader::new(dataset(60), 8).unwrap().shuffle().seed(5);
    let big = DataLoader::new(dataset(60), 32).unwrap().shuffle().seed(5);
    let mut accumulated = trainer(0.2, false).with_accumulate(4);
    let mut direct = trainer(0.2, false);
    let mut plain = trainer(0.2, false);
    let (mut a_steps, mut d_steps) = (Steps::default(), Steps::default());
    let options = options(None, 3);
    let a = accumulated
        .fit(&small, &test, &options, &mut [&mut a_steps])
        .unwrap();
    let d = direct
        .fit(&big, &test, &options, &mut [&mut d_steps])
        .unwrap();
    plain.fit(&small, &test, &options, &mut []).unwrap();
    assert_eq!((a.step, d.step), (6, 6), "optimizer steps are counted");
    // Same step numbers, same scheduled learning rates, same samples per step.
    assert_eq!(a_steps.0, d_steps.0);
    assert_eq!(
        a_steps.0[1].2, 28,
        "the last group holds the epoch's last 28 samples"
    );
    let (wa, wd, wp) = (
        weights(&mut accumulated),
        weights(&mut direct),
        weights(&mut plain),
    );
    let err = max_relative(&wa, &wd);
    eprintln!("accumulated vs batch 32: max relative error {err:e}");
    assert!(err < 1e-5, "accumulated vs batch 32: relative error {err}");
    // The comparison can fail: batches of 8 without accumulation go elsewhere.
    assert!(max_relative(&wp, &wd) > 1e-2);
}

#[test]
fn an_accumulated_step_of_one_micro_batch_is_a_plain_step() {
    let x = Tensor::from_vec(
        (0..24).map(|i| (i % 7) as f32 - 3.0).collect(),
        [6, 4, 1, 1],
    )
    .unwrap();
    let labels = [0, 1, 2, 0, 1, 2];
    let mut one = trainer(0.1, true);
    let mut two = trainer(0.1, true);
    let a = one.step(StepData::new(&x, &labels)).unwrap();
    let b = two.step_accumulated(&[StepData::new(&x, &labels)]).unwrap();
    assert_eq!(a.loss.to_bits(), b.loss.to_bits());
    assert_eq!(state_dict(one.model()), state_dict(two.model()));
}

#[test]
fn label_smoothing_is_pytorchs_and_only_for_cross_entropy() {
    let x = Tensor::from_vec(
        (0..24).map(|i| (i % 7) as f32 / 3.0 - 1.0).collect(),
        [6, 4, 1, 1],
    )
    .unwrap();
    let labels = [0, 1, 2, 0, 1, 2];
    let eps = 0.1f32;
    let mut t = trainer(0.1, false).with_label_smoothing(eps);
    let logits = t.infer(&x).unwrap().to_vec();
    let loss = t.step(StepData::new(&x, &labels)).unwrap().loss;
    // torch.nn.functional.cross_entropy(label_smoothing=ε): the target distribution is
    // (1 − ε)·onehot + ε/C, so per sample −(1 − ε)·log p_y − (ε/C)·Σ_c log p_c; then the
    // batch mean. In f64 from the logits.
    let expected: f64 = logits
        .chunks(3)
        .zip(labels)
        .map(|(row, y)| {
            let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            let logp: Vec<f64> = row.iter().map(|v| v - lse).collect();
            let eps = f64::from(eps);
            -(1.0 - eps) * logp[y] - eps / 3.0 * logp.iter().sum::<f64>()
        })
        .sum::<f64>()
        / 6.0;
    assert!(
        (f64::from(loss) - expected).abs() < 1e-6,
        "{loss} vs {expected}"
    );
    let mut plain = trainer(0.1, false);
    let unsmoothed = plain.step(StepData::new(&x, &labels)).unwrap().loss;
    assert!(
        (loss - unsmoothed).abs() > 1e-5,
        "smoothing changes the loss: {loss} vs {unsmoothed}"
    );

    let mut hinge = trainer(0.1, false)
        .with_loss(Loss::Hinge)
        .with_label_smoothing(0.1);
    let err = hinge.step(StepData::new(&x, &labels)).unwrap_err();
    assert!(matches!(err, TrainError::Config(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "label smoothing applies to the cross-entropy loss only, not Hinge"
    );
    let err = trainer(0.1, false)
        .with_label_smoothing(1.0)
        .step(StepData::new(&x, &labels))
        .unwrap_err();
    assert_eq!(err.to_string(), "label smoothing must be in [0, 1), got 1");
}

#[test]
fn the_ema_follows_its_formula_and_copies_buffers() {
    let x = Tensor::from_vec(
        (0..32).map(|i| (i % 5) as f32 - 2.0).collect(),
        [8, 4, 1, 1],
    )
    .unwrap();
    let labels = [0, 1, 2, 0, 1, 2, 1, 0];
    let decay = 0.75f64;
    let mut t = trainer(0.1, true).with_ema(decay as f32);
    t.set_total_steps(4);
    let names: Vec<String> = named_parameters(t.model())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    // ema₀ = the weights before the first step; emaₖ = d·emaₖ₋₁ + (1 − d)·paramsₖ.
    let mut expected: Vec<Vec<f64>> = named_parameters(t.model())
        .iter()
        .map(|(_, p)| p.to_vec().into_iter().map(f64::from).collect())
        .collect();
    for _ in 0..4 {
        t.step(StepData::new(&x, &labels)).unwrap();
        for (e, (_, p)) in expected.iter_mut().zip(named_parameters(t.model())) {
            for (e, p) in e.iter_mut().zip(p.to_vec()) {
                *e = decay * *e + (1.0 - decay) * f64::from(p);
            }
        }
    }
    let ema = t.ema_weights().expect("an EMA is kept");
    for (name, e) in names.iter().zip(&expected) {
        let got = ema.get(name).unwrap().as_f32().unwrap();
        for (g, e) in got.iter().zip(e) {
            assert!((f64::from(*g) - e).abs() < 1e-6, "{name}: {g} vs {e}");
        }
    }
    // Buffers are the model's, copied, not averaged.
    let model = state_dict(t.model());
    for buffer in ["0.running_mean", "0.running_var"] {
        assert_eq!(
            ema.get(buffer).unwrap().as_f32(),
            model.get(buffer).unwrap().as_f32(),
            "{buffer}"
        );
    }
    // The averaged weights differ from the raw ones.
    assert_ne!(
        ema.get(&names[0]).unwrap().as_f32(),
        model.get(&names[0]).unwrap().as_f32()
    );
}

/// Keeps the EMA evaluations and stops after `stop_after` steps.
struct EmaLog {
    ema_accuracy: Vec<f64>,
    stop: Option<(Arc<AtomicBool>, u64)>,
}
impl Callback for EmaLog {
    fn on_step_end(&mut self, e: &StepEnd) {
        if let Some((flag, after)) = &self.stop
            && e.step == *after
        {
            flag.store(true, Ordering::SeqCst);
        }
    }
    fn on_epoch_end(&mut self, e: &EpochEnd) {
        self.ema_accuracy
            .push(e.ema_test.as_ref().expect("evaluated with an EMA").accuracy);
    }
}

#[test]
fn the_ema_is_evaluated_saved_and_resumed_bit_for_bit() {
    let test = DataLoader::new(dataset(64), 16).unwrap();
    let train = DataLoader::new(dataset(64), 8).unwrap().shuffle().seed(5);
    let straight_dir = scratch("ema-straight");
    let mut straight = trainer(0.1, true).with_ema(0.9);
    let mut log = EmaLog {
        ema_accuracy: Vec::new(),
        stop: None,
    };
    straight
        .fit(
            &train,
            &test,
            &options(Some(&straight_dir), 2),
            &mut [&mut log],
        )
        .unwrap();
    assert_eq!(log.ema_accuracy.len(), 2);
    let saved = checkpoint::load(&straight_dir.join(EMA_FILE)).unwrap();
    let ema = straight.ema_weights().unwrap();
    for (name, record) in ema.iter() {
        assert_eq!(saved.get(name).unwrap(), record, "{name} saved as kept");
    }

    let dir = scratch("ema-stopped");
    let mut first = trainer(0.1, true).with_ema(0.9);
    let mut log = EmaLog {
        ema_accuracy: Vec::new(),
        stop: Some((first.stop_handle(), 11)),
    };
    assert!(
        first
            .fit(&train, &test, &options(Some(&dir), 2), &mut [&mut log])
            .unwrap()
            .stopped
    );
    let path = dir.join(STATE_FILE);
    let state = TrainState::load(&path).unwrap();
    assert!(state.ema.is_some(), "the EMA is part of the training state");
    // A run without an EMA refuses a state with one, and the other way round.
    let err = trainer(0.1, true)
        .restore(state.clone(), &path, &train)
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("it holds EMA weights, but this run keeps no EMA"),
        "{err}"
    );
    let mut second = trainer(0.1, true).with_ema(0.9);
    second.restore(state, &path, &train).unwrap();
    second
        .fit(&train, &test, &options(Some(&dir), 2), &mut [])
        .unwrap();
    assert_eq!(state_dict(second.model()), state_dict(straight.model()));
    assert_eq!(second.ema_weights(), straight.ema_weights());
    assert_eq!(
        std::fs::read(dir.join(EMA_FILE)).unwrap(),
        std::fs::read(straight_dir.join(EMA_FILE)).unwrap()
    );
}

#[test]
fn early_stopping_ends_the_run_saves_it_and_stays_ended() {
    // A learning rate of 0 never changes the model: the test loss of epoch 1 is the best,
    // epochs 2 and 3 do not improve on it, so patience 2 stops after epoch 3 of 10.
    let test = DataLoader::new(dataset(64), 16).unwrap();
    let train = DataLoader::new(dataset(64), 8).unwrap();
    let dir = scratch("early");
    let mut t = trainer(0.0, false).with_early_stopping(2, Monitor::Loss);
    let end = t
        .fit(&train, &test, &options(Some(&dir), 10), &mut [])
        .unwrap();
    assert!(end.early_stopped && !end.stopped);
    assert_eq!(end.step, 24, "three epochs of 8 steps");
    let early = t.early_stopping().unwrap();
    assert_eq!(early.wait, 2);
    let state = TrainState::load(&dir.join(STATE_FILE)).unwrap();
    assert_eq!(state.epoch, 3);
    assert_eq!(state.early_stop, Some((early.best, 2)));
    assert!(dir.join("last.safetensors").exists() && dir.join("best.safetensors").exists());
    // Resumed, the run stays ended.
    let mut again = trainer(0.0, false).with_early_stopping(2, Monitor::Loss);
    let path = dir.join(STATE_FILE);
    again.restore(state, &path, &train).unwrap();
    let end = again
        .fit(&train, &test, &options(Some(&dir), 10), &mut [])
        .unwrap();
    assert!(end.early_stopped);
    assert_eq!(end.step, 24);
    // A learning rate that improves the loss every epoch never stops.
    let mut learning = trainer(0.1, false).with_early_stopping(2, Monitor::Loss);
    let end = learning
        .fit(&train, &test, &options(None, 4), &mut [])
        .unwrap();
    assert!(!end.early_stopped);
    assert_eq!(end.step, 32);
}

#[test]
fn bad_settings_are_config_errors() {
    let train = DataLoader::new(dataset(16), 8).unwrap();
    for (t, message) in [
        (
            trainer(0.1, false).with_accumulate(0),
            "gradient accumulation needs at least 1 micro-batch per step, got 0",
        ),
        (
            trainer(0.1, false).with_ema(1.5),
            "the EMA decay must be in [0, 1], got 1.5",
        ),
        (
            trainer(0.1, false).with_early_stopping(0, Monitor::Accuracy),
            "early stopping needs a patience of at least 1 epoch, got 0",
        ),
    ] {
        let mut t = t;
        let err = t
            .fit(&train, &train, &options(None, 1), &mut [])
            .unwrap_err();
        assert!(matches!(err, TrainError::Config(_)), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
}
