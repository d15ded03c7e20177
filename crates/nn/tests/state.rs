//! Model state through checkpoints: a state-dict round trip for a model with BatchNorm,
//! strict loading, and bit-exact resumption of training from a checkpoint.

use std::path::PathBuf;

use ventral_nn::checkpoint::{DType, StateDict, TensorData, TensorRecord, load, save};
use ventral_nn::layers::{BatchNorm1d, Dropout, Linear, ReLU, Sequential};
use ventral_nn::loss::cross_entropy;
use ventral_nn::optim::{LrScheduler, Optimizer, Schedule, Sgd, SgdConfig};
use ventral_nn::{Error, Init, Mode, Module, Tensor, load_state_dict, state_dict};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ventral-state-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny MLP with batch norm: Linear(3→8), BatchNorm1d(8), ReLU, Linear(8→2).
fn mlp(seed: u64) -> Sequential {
    let mut init = Init::new(seed);
    Sequential::new()
        .push(Linear::new(3, 8, true, &mut init).unwrap()) // [N, 8]
        .push(BatchNorm1d::new(8).unwrap()) // [N, 8]
        .push(ReLU) // [N, 8]
        .push(Linear::new(8, 2, true, &mut init).unwrap()) // [N, 2]
}

#[test]
fn state_dict_round_trip_through_a_checkpoint() {
    let mut model = mlp(1);
    // Train-mode forwards move the running statistics and the batch counter off their
    // initial values, so the round trip has something to carry.
    let x = Tensor::rand_normal([6, 3], 0.0, 1.0, 2).unwrap();
    model.forward(&x).unwrap();
    model.forward(&x).unwrap();
    let state = state_dict(&mut model);
    let keys: Vec<&str> = state.keys().collect();
    assert_eq!(
        keys,
        [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked",
            "3.weight",
            "3.bias"
        ]
    );
    let counter = state.get("1.num_batches_tracked").unwrap();
    assert_eq!(counter.dtype(), DType::I64);
    assert_eq!(counter.shape(), [] as [usize; 0]);
    assert_eq!(counter.as_i64(), Some(&[2i64][..]));

    let path = dir("roundtrip").join("model.safetensors");
    save(&path, &state).unwrap();
    let mut fresh = mlp(7); // other weights, zero running statistics
    load_state_dict(&mut fresh, &load(&path).unwrap()).unwrap();
    let reloaded = state_dict(&mut fresh);
    for (name, record) in state.iter() {
        assert_eq!(reloaded.get(name), Some(record), "{name}");
    }
    // Same state, same function: bit-identical outputs in eval mode.
    model.set_mode(Mode::Eval);
    fresh.set_mode(Mode::Eval);
    assert_eq!(
        model.forward(&x).unwrap().to_vec(),
        fresh.forward(&x).unwrap().to_vec()
    );
}

#[test]
fn strict_loading_names_every_problem_and_changes_nothing() {
    let mut model = mlp(1);
    let mut bad = StateDict::new();
    for (name, record) in state_dict(&mut model).iter() {
        let record = match name {
            "3.bias" => continue, // missing
            // Wrong shape: [8, 3] saved as [3, 8].
            "0.weight" => TensorRecord::new(
                name,
                vec![3, 8],
                TensorData::F32(record.as_f32().unwrap().to_vec()),
            )
            .unwrap(),
            // Wrong dtype: the counter as F32.
            "1.num_batches_tracked" => {
                TensorRecord::new(name, vec![], TensorData::F32(vec![0.0])).unwrap()
            }
            _ => record.clone(),
        };
        bad.insert(name, record);
    }
    bad.insert(
        "4.weight",
        TensorRecord::new("4.weight", vec![1], TensorData::F32(vec![1.0])).unwrap(),
    );
    let before = state_dict(&mut model);
    let err = load_state_dict(&mut model, &bad).unwrap_err();
    assert!(matches!(err, Error::Checkpoint(_)), "{err:?}");
    let message = err.to_string();
    for needle in [
        "missing keys: 3.bias",
        "unexpected keys: 4.weight",
        "`0.weight` has shape [3, 8], the model needs [8, 3]",
        "`1.num_batches_tracked` is F32, the model needs I64",
    ] {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
    assert_eq!(state_dict(&mut model), before);
}

/// Everything a run needs to continue: the model, a dropout after it (so the run also
/// depends on the mask counter), its optimizer and its schedule.
struct Run {
    model: Sequential,
    dropout: Dropout,
    opt: Sgd,
    sched: LrScheduler,
}

impl Run {
    fn new(seed: u64) -> Self {
        let mut opt = Sgd::new(SgdConfig {
            momentum: 0.9,
            weight_decay: 1e-3,
            ..SgdConfig::new(0.1)
        })
        .unwrap();
        let sched = LrScheduler::new(Schedule::step(3, 0.5), &mut opt).unwrap();
        Self {
            model: mlp(seed),
            dropout: Dropout::new(0.2, 11).unwrap(),
            opt,
            sched,
        }
    }

    /// One training step on batch `i` (4 of the 16 rows); returns the loss.
    fn step(&mut self, i: usize, x: &Tensor, y: &[usize]) -> f32 {
        let start = (i % 4) * 4;
        let xb = x.narrow(0, start, 4).unwrap(); // [4, 3]
        let logits = self.model.forward(&xb).unwrap(); // [4, 2]
        let logits = self.dropout.forward(&logits).unwrap(); // [4, 2]
        let loss = cross_entropy(&logits, &y[start..start + 4], 0.0).unwrap();
        let grads = loss.backward().unwrap();
        self.opt.step(&mut self.model, &grads).unwrap();
        self.sched.step(&mut self.opt);
        loss.item().unwrap()
    }
}

#[test]
fn resumed_training_is_bit_identical() {
    const N: usize = 8;
    let x = Tensor::rand_normal([16, 3], 0.0, 1.0, 5).unwrap();
    let xs = x.to_vec();
    // Class 1 when the first two features sum to more than 0.
    let y: Vec<usize> = (0..16)
        .map(|r| usize::from(xs[3 * r] + xs[3 * r + 1] > 0.0))
        .collect();

    let mut straight = Run::new(1);
    let losses: Vec<f32> = (0..N).map(|i| straight.step(i, &x, &y)).collect();

    let mut first = Run::new(1);
    let mut resumed_losses: Vec<f32> = (0..N / 2).map(|i| first.step(i, &x, &y)).collect();
    let d = dir("resume");
    save(&d.join("model.safetensors"), &state_dict(&mut first.model)).unwrap();
    save(&d.join("optim.safetensors"), &first.opt.state_dict()).unwrap();
    save(&d.join("sched.safetensors"), &first.sched.state_dict()).unwrap();
    let saved_calls = first.dropout.calls();
    assert_eq!(saved_calls, (N / 2) as u64);
    drop(first);

    // Fresh objects from another seed: everything must come from the files.
    let mut second = Run::new(99);
    load_state_dict(
        &mut second.model,
        &load(&d.join("model.safetensors")).unwrap(),
    )
    .unwrap();
    second
        .opt
        .load_state_dict(
            &mut second.model,
            &load(&d.join("optim.safetensors")).unwrap(),
        )
        .unwrap();
    second
        .sched
        .load_state_dict(
            &load(&d.join("sched.safetensors")).unwrap(),
            &mut second.opt,
        )
        .unwrap();
    // The dropout's mask counter is not in a PyTorch state dict; a training checkpoint
    // carries it separately.
    second.dropout.set_calls(saved_calls);
    resumed_losses.extend((N / 2..N).map(|i| second.step(i, &x, &y)));

    assert_eq!(
        losses.iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
        resumed_losses
            .iter()
            .map(|l| l.to_bits())
            .collect::<Vec<_>>(),
        "{losses:?} vs {resumed_losses:?}"
    );
    assert_eq!(
        state_dict(&mut straight.model),
        state_dict(&mut second.model)
    );
    assert_eq!(straight.opt.state_dict(), second.opt.state_dict());
    assert_eq!(straight.opt.learning_rate(), second.opt.learning_rate());
    assert!(losses[N - 1] < losses[0], "{losses:?}");
}

#[test]
fn training_state_carries_dropout_positions_and_state_dict_does_not() {
    use ventral_nn::layers::{Dropout, Linear, Sequential};
    use ventral_nn::{Init, Module, Tensor, load_training_state, state_dict, training_state};

    let build = || {
        Sequential::new()
            .push(Linear::new(4, 8, true, &mut Init::new(3)).unwrap())
            .push(Dropout::new(0.5, 11).unwrap())
    };
    let x = Tensor::ones([2, 4]).unwrap();
    let mut model = build();
    for _ in 0..3 {
        model.forward(&x).unwrap();
    }
    // PyTorch's state dict has no dropout entry; the training state has the call count.
    assert!(state_dict(&mut model).get("1.rng_calls").is_none());
    let saved = training_state(&mut model);
    assert_eq!(
        saved.get("1.rng_calls").unwrap().as_i64(),
        Some(&[3i64][..])
    );
    // A fresh model restored from it draws the fourth mask, exactly as the original does.
    let mut resumed = build();
    load_training_state(&mut resumed, &saved).unwrap();
    let expected = model.forward(&x).unwrap().to_vec();
    assert_eq!(resumed.forward(&x).unwrap().to_vec(), expected);
    // Without the restore, a fresh model draws the first mask instead.
    assert_ne!(build().forward(&x).unwrap().to_vec(), expected);
}
