//! The trainer's fit on a tiny problem: when it saves (events in order, the state before the
//! listeners hear of an epoch), and a run stopped and restored through the library ending
//! with the very weights of one never stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ventral_nn::data::{DataLoader, InMemoryDataset};
use ventral_nn::layers::{Linear, ReLU, Sequential};
use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_nn::{Init, state_dict};
use ventral_train::{
    Callback, CheckpointKind, CheckpointSaved, EpochEnd, FitOptions, STATE_FILE, ScheduleKind,
    StepEnd, TrainError, TrainState, Trainer,
};

/// 64 points of 4 features in 3 classes (the class of the largest of the first three).
fn dataset() -> InMemoryDataset {
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for i in 0..64u32 {
        let v: Vec<f32> = (0..4)
            .map(|k| ((i * 7 + k * 13) % 17) as f32 / 17.0 - 0.5)
            .collect();
        let label = (0..3).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        x.extend(v);
        labels.push(label);
    }
    InMemoryDataset::new([4, 1, 1], x, labels, 3, None).unwrap()
}

fn trainer() -> Trainer {
    let mut init = Init::new(3);
    let model = Sequential::new()
        .push(ventral_nn::layers::Flatten)
        .push(Linear::new(4, 16, true, &mut init).unwrap())
        .push(ReLU)
        .push(Linear::new(16, 3, true, &mut init).unwrap());
    let sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.1)
    })
    .unwrap();
    Trainer::new(Box::new(model), Box::new(sgd), 3).with_schedule(ScheduleKind::Cosine)
}

/// 8 batches of 8, shuffled.
fn loaders() -> (DataLoader<InMemoryDataset>, DataLoader<InMemoryDataset>) {
    let train = DataLoader::new(dataset(), 8).unwrap().shuffle().seed(5);
    let test = DataLoader::new(dataset(), 16).unwrap();
    (train, test)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ventral-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every event, as text, in order; sets `stop` after `stop_after` steps.
struct Log {
    events: Vec<String>,
    stop: Option<(Arc<AtomicBool>, u64)>,
}

impl Callback for Log {
    fn on_step_end(&mut self, e: &StepEnd) {
        self.events.push(format!("step {}", e.step));
        if let Some((flag, after)) = &self.stop
            && e.step == *after
        {
            flag.store(true, Ordering::SeqCst);
        }
    }
    fn on_checkpoint(&mut self, e: &CheckpointSaved) {
        let name = e.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(e.path.exists(), "{name} is on disk when announced");
        self.events
            .push(format!("{:?} {} at {}", e.kind, name, e.step));
    }
    fn on_epoch_end(&mut self, e: &EpochEnd) {
        self.events.push(format!("epoch {} end", e.epoch));
    }
}

fn options(out: &Path, epochs: u64, save_every: Option<u64>) -> FitOptions {
    FitOptions {
        epochs,
        out: Some(out.to_path_buf()),
        save_every,
        seed: 5,
    }
}

#[test]
fn the_state_is_saved_before_the_first_step_every_n_steps_and_before_an_epoch_is_reported() {
    let dir = scratch("events");
    let (train, test) = loaders();
    let mut log = Log {
        events: Vec::new(),
        stop: None,
    };
    let mut t = trainer();
    let end = t
        .fit(&train, &test, &options(&dir, 1, Some(3)), &mut [&mut log])
        .unwrap();
    assert!(!end.stopped);
    assert_eq!(end.step, 8);
    let state = "State train_state.safetensors";
    let expected = vec![
        format!("{state} at 0"),
        "step 1".into(),
        "step 2".into(),
        "step 3".into(),
        format!("{state} at 3"),
        "step 4".into(),
        "step 5".into(),
        "step 6".into(),
        format!("{state} at 6"),
        "step 7".into(),
        "step 8".into(),
        "Last last.safetensors at 8".into(),
        "Best best.safetensors at 8".into(),
        format!("{state} at 8"),
        "epoch 0 end".into(),
    ];
    assert_eq!(log.events, expected);
    let _ = CheckpointKind::State;
}

#[test]
fn stopped_and_restored_through_the_library_equals_never_stopped() {
    let (train, test) = loaders();
    let straight_dir = scratch("straight");
    let mut straight = trainer();
    straight
        .fit(&train, &test, &options(&straight_dir, 2, None), &mut [])
        .unwrap();

    let dir = scratch("stopped");
    let mut first = trainer();
    let mut log = Log {
        events: Vec::new(),
        stop: Some((first.stop_handle(), 11)),
    };
    let end = first
        .fit(&train, &test, &options(&dir, 2, None), &mut [&mut log])
        .unwrap();
    assert!(end.stopped);
    assert_eq!(end.step, 11);
    drop(first);

    // A fresh trainer (another initialisation would do: everything comes from the file).
    let path = dir.join(STATE_FILE);
    let mut second = trainer();
    second
        .restore(TrainState::load(&path).unwrap(), &path, &train)
        .unwrap();
    assert_eq!(second.steps(), 11);
    let end = second
        .fit(&train, &test, &options(&dir, 2, None), &mut [])
        .unwrap();
    assert!(!end.stopped);
    assert_eq!(end.step, 16);
    assert_eq!(
        state_dict(second.model()),
        state_dict(straight.model()),
        "bit-identical weights"
    );
}

#[test]
fn a_state_for_another_model_is_refused_and_nothing_is_restored() {
    let (train, test) = loaders();
    let dir = scratch("refused");
    let mut t = trainer();
    t.fit(&train, &test, &options(&dir, 1, None), &mut [])
        .unwrap();
    let path = dir.join(STATE_FILE);
    let state = TrainState::load(&path).unwrap();
    // A model with 8 hidden units instead of 16.
    let mut init = Init::new(3);
    let model = Sequential::new()
        .push(ventral_nn::layers::Flatten)
        .push(Linear::new(4, 8, true, &mut init).unwrap())
        .push(ReLU)
        .push(Linear::new(8, 3, true, &mut init).unwrap());
    let sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.1)
    })
    .unwrap();
    let mut other = Trainer::new(Box::new(model), Box::new(sgd), 3);
    let before = state_dict(other.model());
    let err = other.restore(state, &path, &train).unwrap_err();
    assert!(matches!(err, TrainError::BadState { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("train_state.safetensors: the model part does not fit the model")
            && message.contains("`1.weight` has shape [16, 4], the model needs [8, 4]"),
        "{message}"
    );
    assert_eq!(state_dict(other.model()), before);
    assert_eq!(other.steps(), 0);
}
