//! Fine-tuning: strict loads without `num_batches_tracked`, partial loads with their report,
//! and freezing (no gradient, no optimizer state or update, batch norm kept in eval mode).

use ventral_nn::checkpoint::{StateDict, TensorData, TensorRecord};
use ventral_nn::layers::{BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential};
use ventral_nn::loss::cross_entropy;
use ventral_nn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use ventral_nn::{
    Conv2dParams, Frozen, Init, Mode, Module, Tensor, load_state_dict, load_state_dict_partial,
    modes, named_parameters, state_dict, under_prefix,
};

/// conv(1→4, 3x3) → BN → ReLU → flatten → linear(4·4·4 → classes), on 1x6x6 inputs.
fn net(classes: usize, seed: u64) -> Sequential {
    let init = &mut Init::new(seed);
    Sequential::new()
        .push(Conv2d::new(1, 4, (3, 3), Conv2dParams::default(), true, init).unwrap())
        .push(BatchNorm2d::new(4).unwrap())
        .push(ReLU)
        .push(Flatten)
        .push(Linear::new(64, classes, true, init).unwrap())
}

fn batch() -> (Tensor, Vec<usize>) {
    let x = Tensor::rand_normal([8, 1, 6, 6], 0.0, 1.0, 7).unwrap();
    (x, vec![0, 1, 2, 0, 1, 2, 0, 1])
}

/// `steps` training steps of `opt` on the fixed batch.
fn train(model: &mut dyn Module, opt: &mut dyn Optimizer, steps: usize) {
    let (x, y) = batch();
    model.set_mode(Mode::Train);
    for _ in 0..steps {
        let loss = cross_entropy(&model.forward(&x).unwrap(), &y, 0.0).unwrap();
        let grads = loss.backward().unwrap();
        opt.step(model, &grads).unwrap();
    }
}

fn without(state: &StateDict, drop: impl Fn(&str) -> bool) -> StateDict {
    let mut out = StateDict::new();
    for (k, r) in state.iter().filter(|(k, _)| !drop(k)) {
        out.insert(k, r.clone());
    }
    out
}

#[test]
fn a_strict_load_accepts_a_state_dict_without_num_batches_tracked() {
    let mut trained = net(3, 0);
    train(&mut trained, &mut Sgd::new(SgdConfig::new(0.1)).unwrap(), 2);
    let full = state_dict(&mut trained);
    assert_eq!(
        full.get("1.num_batches_tracked").unwrap().as_i64(),
        Some(&[2][..])
    );
    // A model whose counter has moved: the missing counter must start at 0, as PyTorch's.
    let mut fresh = net(3, 1);
    train(&mut fresh, &mut Sgd::new(SgdConfig::new(0.0)).unwrap(), 5);
    let torchvision_style = without(&full, |k| k.ends_with("num_batches_tracked"));
    load_state_dict(&mut fresh, &torchvision_style).unwrap();
    let loaded = state_dict(&mut fresh);
    assert_eq!(loaded.get("0.weight"), full.get("0.weight"));
    assert_eq!(loaded.get("1.running_var"), full.get("1.running_var"));
    assert_eq!(
        loaded.get("1.num_batches_tracked").unwrap().as_i64(),
        Some(&[0][..])
    );
    // Any other missing key still fails, by name.
    let err = load_state_dict(&mut fresh, &without(&full, |k| k == "1.running_mean"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "state dict does not match the model: missing keys: 1.running_mean"
    );
}

#[test]
fn a_partial_load_takes_what_matches_and_reports_the_rest() {
    let mut ten = net(10, 0);
    let mut state = state_dict(&mut ten);
    state.insert(
        "extra.weight",
        TensorRecord::new("extra.weight", vec![1], TensorData::F32(vec![1.0])).unwrap(),
    );
    let state = without(&state, |k| {
        k == "1.running_mean" || k == "1.num_batches_tracked"
    });
    let mut five = net(5, 3);
    let fresh = state_dict(&mut five);
    let report = load_state_dict_partial(&mut five, &state).unwrap();
    assert_eq!(
        report.loaded,
        ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_var"]
    );
    assert_eq!(report.skipped, ["extra.weight"]);
    assert_eq!(
        report.mismatched,
        [
            ("4.weight".to_string(), vec![10, 64], vec![5, 64]),
            ("4.bias".to_string(), vec![10], vec![5]),
        ]
    );
    assert_eq!(report.missing, ["1.running_mean"]);
    let after = state_dict(&mut five);
    assert_eq!(after.get("0.weight"), state.get("0.weight"));
    // The replaced head and the missing buffer keep their fresh values.
    assert_eq!(after.get("4.weight"), fresh.get("4.weight"));
    assert_eq!(after.get("1.running_mean"), fresh.get("1.running_mean"));
    assert_eq!(
        report.to_string(),
        "loaded 5; skipped 1 (extra.weight); mismatched 2 (4.weight [10, 64] in the file, \
         [5, 64] in the model, 4.bias [10] in the file, [5] in the model); missing 1 \
         (1.running_mean)"
    );
    // Long lists name their first 8 keys.
    let mut extra = StateDict::new();
    for i in 0..10 {
        let name = format!("x{i}");
        extra.insert(
            &name,
            TensorRecord::new(&name, vec![1], TensorData::F32(vec![0.0])).unwrap(),
        );
    }
    let report = load_state_dict_partial(&mut net(3, 0), &extra).unwrap();
    assert!(
        report
            .to_string()
            .contains("skipped 10 (x0, x1, x2, x3, x4, x5, x6, x7, and 2 more)"),
        "{report}"
    );
}

#[test]
fn prefixes_match_at_dot_boundaries() {
    assert!(under_prefix("conv1.weight", "conv1"));
    assert!(under_prefix("conv1", "conv1"));
    assert!(under_prefix("layer1.0.bn1.weight", "layer1.0"));
    assert!(!under_prefix("conv10.weight", "conv1"));
    assert!(!under_prefix("layer10.0.weight", "layer1"));
}

#[test]
fn an_unknown_or_empty_prefix_is_an_error_naming_the_modules() {
    let err = Frozen::new(Box::new(net(3, 0)), &["features"])
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        "freeze: `features` matches no parameter or buffer of the model; its top-level \
         modules are 0, 1, 4"
    );
    // `0` names a module, but `0.w` is no key and `4` is not `40`.
    assert!(Frozen::new(Box::new(net(3, 0)), &["0.w"]).is_err());
    assert!(Frozen::new(Box::new(net(3, 0)), &[""]).is_err());
    assert!(Frozen::new(Box::new(net(3, 0)), &["4.bias"]).is_ok());
}

/// Frozen tensors stay bit-identical under SGD with momentum and weight decay, and under
/// AdamW's decoupled decay; the rest trains; the optimizer keeps no state for them.
#[test]
fn frozen_parameters_and_statistics_never_move() {
    let sgd = || {
        Box::new(
            Sgd::new(SgdConfig {
                momentum: 0.9,
                weight_decay: 0.1,
                ..SgdConfig::new(0.1)
            })
            .unwrap(),
        ) as Box<dyn Optimizer>
    };
    let adamw = || Box::new(Adam::new(AdamConfig::adamw(0.01)).unwrap()) as Box<dyn Optimizer>;
    for make in [sgd, adamw] {
        let mut model = Frozen::new(Box::new(net(3, 0)), &["0", "1"]).unwrap();
        let before = state_dict(&mut model);
        let mut opt = make();
        train(&mut model, opt.as_mut(), 4);
        let after = state_dict(&mut model);
        for key in [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked",
        ] {
            assert_eq!(after.get(key), before.get(key), "{key} moved");
        }
        assert_ne!(after.get("4.weight"), before.get("4.weight"));
        // Parameters 0..=3 (0.weight, 0.bias, 1.weight, 1.bias) are frozen: state only for
        // 4 (4.weight) and 5 (4.bias).
        let state = opt.state_dict();
        let mut indices: Vec<&str> = state
            .keys()
            .filter(|k| *k != "step")
            .map(|k| k.rsplit('.').next().unwrap())
            .collect();
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(indices, ["4", "5"]);
        // That state loads back into a fresh optimizer for the same frozen model.
        make()
            .load_state_dict(&mut model, &opt.state_dict())
            .unwrap();
    }
}

#[test]
fn backward_computes_no_gradient_for_frozen_parameters() {
    let mut model = Frozen::new(Box::new(net(3, 0)), &["0"]).unwrap();
    let (x, y) = batch();
    let grads = cross_entropy(&model.forward(&x).unwrap(), &y, 0.0)
        .unwrap()
        .backward()
        .unwrap();
    for (name, p) in named_parameters(&mut model) {
        assert_eq!(
            grads.get(&p).is_some(),
            !name.starts_with("0."),
            "{name}: gradient"
        );
        assert_eq!(p.requires_grad(), !name.starts_with("0."), "{name}");
    }
    // Even a gradient handed in for a frozen parameter is not applied.
    let mut grads = grads;
    let conv = named_parameters(&mut model).remove(0).1;
    grads
        .insert(&conv, Tensor::ones([4, 1, 3, 3]).unwrap())
        .unwrap();
    let before = state_dict(&mut model);
    Sgd::new(SgdConfig::new(1.0))
        .unwrap()
        .step(&mut model, &grads)
        .unwrap();
    assert_eq!(
        state_dict(&mut model).get("0.weight"),
        before.get("0.weight")
    );
}

#[test]
fn batch_norm_under_a_frozen_prefix_stays_in_eval_mode() {
    let mut model = Frozen::new(Box::new(net(3, 0)), &["1"]).unwrap();
    for mode in [Mode::Train, Mode::Eval, Mode::Train] {
        model.set_mode(mode);
        assert_eq!(modes(&mut model, ""), [("1".to_string(), Mode::Eval)]);
    }
    // Not frozen: it follows the model.
    let mut model = Frozen::new(Box::new(net(3, 0)), &["0"]).unwrap();
    model.set_mode(Mode::Train);
    assert_eq!(modes(&mut model, ""), [("1".to_string(), Mode::Train)]);
    // The wrapper adds no name.
    let keys: Vec<String> = state_dict(&mut model).keys().map(String::from).collect();
    assert_eq!(keys[0], "0.weight");
}
