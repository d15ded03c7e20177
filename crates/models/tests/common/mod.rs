//! Shared test helpers: the reference state-dict layouts and a small training loop.
#![allow(dead_code)]

use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_nn::{Module, Optimizer, Tensor, state_dict_layout};

/// A model's parameter count and `(key, shape)` pairs in the reference JSON (generated from
/// PyTorch by tests/data/zoo_defs.py).
pub fn reference(model: &str) -> (usize, Vec<(String, Vec<usize>)>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/torchvision_state_dicts.json"
    ))
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = &json[model];
    assert!(entry.is_object(), "no reference for {model}");
    let keys = entry["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let shape = k[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (k[0].as_str().unwrap().to_string(), shape)
        })
        .collect();
    (entry["parameters"].as_u64().unwrap() as usize, keys)
}

/// The model's `(key, shape)` pairs in state-dict order.
pub fn layout(model: &mut dyn Module) -> Vec<(String, Vec<usize>)> {
    state_dict_layout(model)
        .into_iter()
        .map(|(k, s, _)| (k, s))
        .collect()
}

/// Runs `steps` SGD steps (momentum 0.9) of cross-entropy on one fixed batch and returns the
/// losses.
pub fn train(
    model: &mut dyn Module,
    x: &Tensor,
    labels: &[usize],
    lr: f32,
    steps: usize,
) -> Vec<f32> {
    let mut opt = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(lr)
    })
    .unwrap();
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let loss =
            ventral_nn::loss::cross_entropy(&model.forward(x).unwrap(), labels, 0.0).unwrap();
        losses.push(loss.item().unwrap());
        let grads = loss.backward().unwrap();
        opt.step(model, &grads).unwrap();
    }
    losses
}

/// Asserts the mean of the last three losses is below `fraction` of the first loss.
pub fn assert_falls(losses: &[f32], fraction: f32) {
    let n = losses.len();
    let tail = losses[n - 3..].iter().sum::<f32>() / 3.0;
    assert!(
        tail.is_finite() && tail < fraction * losses[0],
        "loss did not fall below {fraction} of the start: {losses:?}"
    );
}
