//! LeNet-5 against the reference state-dict layout, and a short learning check.

use ventral_models::LeNet5;
use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_nn::{Module, Optimizer, Tensor, parameter_count, state_dict_layout};

/// `(key, shape)` pairs of a model in the reference JSON (generated from PyTorch, see
/// tests/data/zoo_defs.py).
fn reference(model: &str) -> (usize, Vec<(String, Vec<usize>)>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/torchvision_state_dicts.json"
    ))
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = &json[model];
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

#[test]
fn lenet5_matches_the_reference_layout_and_count() {
    let mut model = LeNet5::new(10, 0).unwrap();
    let (count, keys) = reference("lenet5");
    assert_eq!(parameter_count(&mut model), count);
    assert_eq!(count, 61_706);
    let layout: Vec<(String, Vec<usize>)> = state_dict_layout(&mut model)
        .into_iter()
        .map(|(k, s, _)| (k, s))
        .collect();
    assert_eq!(layout, keys);
}

#[test]
fn lenet5_output_shape_and_learning() {
    let mut model = LeNet5::new(10, 1).unwrap();
    let x = Tensor::rand_normal(vec![8, 1, 28, 28], 0.0, 1.0, 5).unwrap();
    assert_eq!(model.forward(&x).unwrap().dims(), [8, 10]);
    // Memorise 8 random images with random labels: the loss must fall.
    let labels = [3usize, 1, 4, 1, 5, 9, 2, 6];
    let mut opt = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.02)
    })
    .unwrap();
    let mut losses = Vec::new();
    for _ in 0..80 {
        let loss = ventral_autograd_loss(&mut model, &x, &labels);
        losses.push(loss.item().unwrap());
        let grads = loss.backward().unwrap();
        opt.step(&mut model, &grads).unwrap();
    }
    assert!(losses[79] < 0.5 * losses[0], "loss {:?}", losses);
}

fn ventral_autograd_loss(model: &mut LeNet5, x: &Tensor, labels: &[usize]) -> Tensor {
    ventral_nn::loss::cross_entropy(&model.forward(x).unwrap(), labels, 0.0).unwrap()
}

#[test]
fn bad_input_names_the_layer() {
    let model = LeNet5::new(10, 0).unwrap();
    let err = model
        .forward(&Tensor::zeros(vec![2, 3, 28, 28]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv1")
            && err.contains("expected input [N, 1, H, W]")
            && err.contains("[2, 3, 28, 28]"),
        "{err}"
    );
}
