//! Optimizers: three steps on a fixed problem against values computed by hand from PyTorch's
//! documented update equations, and state save/restore.
//!
//! The problem: one parameter `w = [1, −2]` and the loss `L = ½ Σ w²`, so the gradient at
//! each step is `g = w` (per element). Elements are independent, so each derivation below
//! follows the element starting at 1 (the one starting at −2 is computed the same way and
//! given with the results; the derivations were evaluated in f64).

use ventral_nn::checkpoint::{StateDict, TensorData, TensorRecord, load, save};
use ventral_nn::optim::{
    Adam, AdamConfig, AdamW, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use ventral_nn::{Module, Result, Slot, Tensor};

/// A module that is one parameter.
#[derive(Clone)]
struct Param {
    w: Tensor,
}

impl Param {
    fn new() -> Self {
        Self {
            w: Tensor::from_vec(vec![1.0, -2.0], [2]).unwrap().with_grad(),
        }
    }
}

impl Module for Param {
    fn forward(&self, _: &Tensor) -> Result<Tensor> {
        Ok(self.w.clone())
    }
    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'_>)) {
        f(&ventral_nn::join(prefix, "w"), Slot::Parameter(&mut self.w));
    }
    fn describe(&self) -> String {
        "Param".into()
    }
}

/// One step: `L = ½ Σ w²`, backward (`g = w`), optimizer step.
fn step(model: &mut Param, opt: &mut dyn Optimizer) {
    let loss = model.w.mul(&model.w).unwrap().sum_all().unwrap();
    let loss = loss.mul_scalar(0.5).unwrap();
    let grads = loss.backward().unwrap();
    opt.step(model, &grads).unwrap();
}

/// The parameter after each of three steps.
fn three_steps(opt: &mut dyn Optimizer) -> Vec<Vec<f32>> {
    let mut model = Param::new();
    (0..3)
        .map(|_| {
            step(&mut model, opt);
            model.w.to_vec()
        })
        .collect()
}

#[track_caller]
fn assert_steps(actual: &[Vec<f32>], expected: &[[f64; 2]; 3]) {
    for (t, (a, e)) in actual.iter().zip(expected).enumerate() {
        for k in 0..2 {
            let err = (f64::from(a[k]) - e[k]).abs();
            assert!(
                err <= 2e-6 * e[k].abs().max(1.0),
                "step {}: element {k} is {}, expected {}",
                t + 1,
                a[k],
                e[k]
            );
        }
    }
}

/// Three steps of Adam (`decay` = 0) or AdamW (decoupled weight decay `decay`) on `L = ½ Σ w²`
/// from `w = [1, −2]`, in f64, written from PyTorch's documented algorithm (lr 0.1,
/// β = (0.9, 0.999), ε = 1e-8): the reference the hand derivations in the tests follow.
fn adam_reference(decay: f64) -> [[f64; 2]; 3] {
    let (lr, b1, b2, eps) = (0.1, 0.9f64, 0.999f64, 1e-8);
    let mut out = [[0.0; 2]; 3];
    for (k, w0) in [1.0f64, -2.0].into_iter().enumerate() {
        let (mut w, mut m, mut v) = (w0, 0.0, 0.0);
        for (t, row) in out.iter_mut().enumerate() {
            let g = w; // ∂(½ w²)/∂w
            w *= 1.0 - lr * decay;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let m_hat = m / (1.0 - b1.powi(t as i32 + 1));
            let v_hat = v / (1.0 - b2.powi(t as i32 + 1));
            w -= lr * m_hat / (v_hat.sqrt() + eps);
            row[k] = w;
        }
    }
    out
}

/// Three steps of RMSprop (lr 0.01, α = 0.99, ε = 1e-8, optional momentum and centring) on
/// `L = ½ Σ w²` from `w = [1, −2]`, in f64, from PyTorch's documented algorithm.
fn rmsprop_reference(momentum: f64, centered: bool) -> [[f64; 2]; 3] {
    let (lr, alpha, eps) = (0.01, 0.99, 1e-8);
    let mut out = [[0.0; 2]; 3];
    for (k, w0) in [1.0f64, -2.0].into_iter().enumerate() {
        let (mut w, mut v, mut g_avg, mut b) = (w0, 0.0, 0.0, 0.0);
        for row in out.iter_mut() {
            let g = w;
            v = alpha * v + (1.0 - alpha) * g * g;
            let mut denominator = v;
            if centered {
                g_avg = alpha * g_avg + (1.0 - alpha) * g;
                denominator -= g_avg * g_avg;
            }
            let step = g / (denominator.sqrt() + eps);
            if momentum > 0.0 {
                b = momentum * b + step;
                w -= lr * b;
            } else {
                w -= lr * step;
            }
            row[k] = w;
        }
    }
    out
}

/// Checks that the values written out in a test's derivation (9 significant digits) agree
/// with the f64 reference, so the comments and the reference cannot drift apart.
#[track_caller]
fn assert_table(reference: &[[f64; 2]; 3], written: &[[f64; 2]; 3]) {
    for (t, (r, w)) in reference.iter().zip(written).enumerate() {
        for k in 0..2 {
            assert!(
                (r[k] - w[k]).abs() <= 1e-9 * r[k].abs().max(1.0),
                "step {}: element {k}: the derivation says {}, the reference gives {}",
                t + 1,
                w[k],
                r[k]
            );
        }
    }
}

#[test]
fn sgd_vanilla() {
    // w ← w − lr g = (1 − 0.1) w: 0.9, 0.81, 0.729 (and −1.8, −1.62, −1.458).
    let mut opt = Sgd::new(SgdConfig::new(0.1)).unwrap();
    assert_steps(
        &three_steps(&mut opt),
        &[[0.9, -1.8], [0.81, -1.62], [0.729, -1.458]],
    );
}

#[test]
fn sgd_momentum() {
    // μ = 0.9, lr = 0.1, b₁ = g₁:
    // t1: g = 1,    b = 1,                   w = 1 − 0.1 = 0.9
    // t2: g = 0.9,  b = 0.9 · 1 + 0.9 = 1.8,  w = 0.9 − 0.18 = 0.72
    // t3: g = 0.72, b = 0.9 · 1.8 + 0.72 = 2.34, w = 0.72 − 0.234 = 0.486
    // (linear in w, so the −2 element is −2 times each).
    let mut opt = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.1)
    })
    .unwrap();
    assert_steps(
        &three_steps(&mut opt),
        &[[0.9, -1.8], [0.72, -1.44], [0.486, -0.972]],
    );
}

#[test]
fn sgd_nesterov() {
    // μ = 0.9, lr = 0.1; the step direction is g + μ b:
    // t1: g = 1,      b = 1,                         d = 1 + 0.9 = 1.9,          w = 0.81
    // t2: g = 0.81,   b = 0.9 + 0.81 = 1.71,         d = 0.81 + 1.539 = 2.349,   w = 0.5751
    // t3: g = 0.5751, b = 1.539 + 0.5751 = 2.1141,   d = 0.5751 + 1.90269 = 2.47779,
    //     w = 0.5751 − 0.247779 = 0.327321
    let mut opt = Sgd::new(SgdConfig {
        momentum: 0.9,
        nesterov: true,
        ..SgdConfig::new(0.1)
    })
    .unwrap();
    assert_steps(
        &three_steps(&mut opt),
        &[[0.81, -1.62], [0.5751, -1.1502], [0.327321, -0.654642]],
    );
}

#[test]
fn sgd_weight_decay() {
    // λ = 0.1, lr = 0.1: g ← g + λ w = 1.1 w, so w ← (1 − 0.11) w = 0.89 w:
    // 0.89, 0.7921, 0.704969.
    let mut opt = Sgd::new(SgdConfig {
        weight_decay: 0.1,
        ..SgdConfig::new(0.1)
    })
    .unwrap();
    assert_steps(
        &three_steps(&mut opt),
        &[[0.89, -1.78], [0.7921, -1.5842], [0.704969, -1.409938]],
    );
}

#[test]
fn adam() {
    // lr = 0.1, β = (0.9, 0.999), ε = 1e-8; m̂ = m / (1 − 0.9ᵗ), v̂ = v / (1 − 0.999ᵗ):
    // t1: g = 1; m = 0.1, v = 0.001; m̂ = 1, v̂ = 1; w = 1 − 0.1 · 1 / (1 + 1e-8) = 0.900000001
    // t2: g = 0.900000001; m = 0.09 + 0.09 = 0.18, v = 0.000999 + 0.00081 = 0.001809;
    //     m̂ = 0.18 / 0.19 = 0.947368422, v̂ = 0.001809 / 0.001999 = 0.904952477;
    //     w = 0.9 − 0.1 · 0.947368422 / 0.951290953 = 0.80041223
    // t3: g = 0.80041223; m = 0.162 + 0.080041223 = 0.242041223,
    //     v = 0.001807191 + 0.00064066 = 0.002447851; m̂ = 0.242041223 / 0.271 = 0.893141045,
    //     v̂ = 0.002447851 / 0.002997001 = 0.816766741;
    //     w = 0.80041223 − 0.1 · 0.893141045 / 0.903751481 = 0.701586275
    // The −2 element: −1.9, −1.800166487, −1.700623393.
    let expected = adam_reference(0.0);
    assert_table(
        &expected,
        &[
            [0.900000001, -1.9],
            [0.80041223, -1.800166487],
            [0.701586275, -1.700623393],
        ],
    );
    let mut opt = Adam::with_lr(0.1).unwrap();
    assert_steps(&three_steps(&mut opt), &expected);
}

#[test]
fn adamw() {
    // lr = 0.1, λ = 0.1 decoupled: first w ← w (1 − lr λ) = 0.99 w, then Adam's step with
    // the gradient taken before the decay (g = w at the start of the step).
    // t1: g = 1; w = 0.99 − 0.1 · 1 / (1 + 1e-8) = 0.890000001
    // t2: g = 0.890000001; m = 0.09 + 0.089 = 0.179, v = 0.000999 + 0.0007921 = 0.0017911;
    //     m̂ = 0.179 / 0.19 = 0.942105264, v̂ = 0.0017911 / 0.001999 = 0.895998;
    //     w = 0.99 · 0.89 − 0.1 · 0.942105264 / 0.946571 = 0.8811 − 0.099528 = 0.781571857
    // t3: g = 0.781571857; m = 0.1611 + 0.0781571857 = 0.239257186,
    //     v = 0.001789309 + 0.000610854 = 0.002400163; m̂ = 0.882867844, v̂ = 0.800855078;
    //     w = 0.99 · 0.781571857 − 0.1 · 0.882867844 / 0.894905 = 0.675101223
    // The −2 element: −1.88, −1.761408951, −1.644368684.
    let expected = adam_reference(0.1);
    assert_table(
        &expected,
        &[
            [0.890000001, -1.88],
            [0.781571857, -1.761408951],
            [0.675101223, -1.644368684],
        ],
    );
    let mut opt = AdamW::new(AdamConfig {
        weight_decay: 0.1,
        ..AdamConfig::adamw(0.1)
    })
    .unwrap();
    assert_steps(&three_steps(&mut opt), &expected);
}

#[test]
fn rmsprop() {
    // lr = 0.01, α = 0.99, ε = 1e-8: v ← 0.99 v + 0.01 g², w ← w − lr g / (√v + ε).
    // t1: g = 1; v = 0.01; √v = 0.1; w = 1 − 0.01 · 1 / 0.10000001 = 0.90000001
    // t2: g = 0.90000001; v = 0.0099 + 0.0081 = 0.018; √v = 0.134164079;
    //     w = 0.9 − 0.01 · 0.9 / 0.134164089 = 0.832917975
    // t3: g = 0.832917975; v = 0.01782 + 0.006937524 = 0.024757524; √v = 0.157345237;
    //     w = 0.832917975 − 0.01 · 0.832917975 / 0.157345247 = 0.779982282
    // The −2 element: −1.900000005, −1.830943333, −1.77534945.
    let expected = rmsprop_reference(0.0, false);
    assert_table(
        &expected,
        &[
            [0.90000001, -1.900000005],
            [0.832917975, -1.830943333],
            [0.779982282, -1.77534945],
        ],
    );
    let mut opt = RmsProp::new(RmsPropConfig::new(0.01)).unwrap();
    assert_steps(&three_steps(&mut opt), &expected);
}

#[test]
fn rmsprop_centered_with_momentum() {
    // lr = 0.01, α = 0.99, μ = 0.9, centred: ḡ ← 0.99 ḡ + 0.01 g, ṽ = v − ḡ²,
    // b ← μ b + g / (√ṽ + ε), w ← w − lr b.
    // t1: g = 1; v = 0.01, ḡ = 0.01, ṽ = 0.0099, √ṽ = 0.0994987437; b = 10.0503771;
    //     w = 1 − 0.100503771 = 0.899496229
    // t2: g = 0.899496229; v = 0.0099 + 0.008090934 = 0.017990935,
    //     ḡ = 0.0099 + 0.008994962 = 0.018894962, ṽ = 0.017990935 − 0.00035702 = 0.017633915,
    //     √ṽ = 0.132792752; b = 9.04533943 + 6.77369314 = 15.8190236; w = 0.741305993
    // t3: g = 0.741305993; v = 0.023306371, ḡ = 0.026119073, ṽ = 0.022624165,
    //     √ṽ = 0.150413314; b = 14.2371212 + 4.92845961 = 19.1655808; w = 0.549650185
    // The −2 element: −1.899496224, −1.739298758, −1.54067803.
    let expected = rmsprop_reference(0.9, true);
    assert_table(
        &expected,
        &[
            [0.899496229, -1.899496224],
            [0.741305993, -1.739298758],
            [0.549650185, -1.54067803],
        ],
    );
    let mut opt = RmsProp::new(RmsPropConfig {
        momentum: 0.9,
        centered: true,
        ..RmsPropConfig::new(0.01)
    })
    .unwrap();
    assert_steps(&three_steps(&mut opt), &expected);
}

/// Asserts `result` is a configuration error naming `what` whose detail contains `needle`.
#[track_caller]
fn assert_config_error<T: std::fmt::Debug>(result: Result<T>, what: &str, needle: &str) {
    match result {
        Err(ventral_nn::Error::Config { what: w, detail })
            if w == what && detail.contains(needle) => {}
        other => panic!("expected a `{what}` config error containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn bad_hyper_parameters_are_errors() {
    assert_config_error(
        Sgd::new(SgdConfig::new(-1.0)),
        "learning rate",
        "must be a finite number >= 0, got -1",
    );
    assert_config_error(
        Sgd::new(SgdConfig {
            nesterov: true,
            ..SgdConfig::new(0.1)
        }),
        "SGD",
        "Nesterov momentum requires a momentum and zero dampening",
    );
    assert_config_error(Adam::with_lr(f32::NAN), "learning rate", "got NaN");
    assert_config_error(
        RmsProp::new(RmsPropConfig {
            alpha: 1.5,
            ..RmsPropConfig::new(0.1)
        }),
        "RMSprop",
        "alpha must be in [0, 1], got 1.5",
    );
}

/// Two steps, save the optimizer's state to a safetensors file, load it into a fresh
/// optimizer, take the third step: the result is bit-identical to three straight steps.
#[track_caller]
fn state_round_trip(make: impl Fn() -> Box<dyn Optimizer>, name: &str) {
    let straight = three_steps(make().as_mut());
    let mut model = Param::new();
    let mut opt = make();
    step(&mut model, opt.as_mut());
    step(&mut model, opt.as_mut());
    let dir = std::env::temp_dir().join(format!("ventral-optim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.safetensors"));
    save(&path, &opt.state_dict()).unwrap();
    let mut fresh = make();
    fresh
        .load_state_dict(&mut model, &load(&path).unwrap())
        .unwrap();
    step(&mut model, fresh.as_mut());
    assert_eq!(model.w.to_vec(), straight[2], "{name}");
}

#[test]
fn optimizer_state_survives_a_checkpoint() {
    state_round_trip(
        || {
            Box::new(
                Sgd::new(SgdConfig {
                    momentum: 0.9,
                    nesterov: true,
                    ..SgdConfig::new(0.1)
                })
                .unwrap(),
            )
        },
        "sgd",
    );
    state_round_trip(|| Box::new(Adam::adamw(0.1).unwrap()), "adamw");
    state_round_trip(
        || {
            Box::new(
                RmsProp::new(RmsPropConfig {
                    momentum: 0.5,
                    centered: true,
                    ..RmsPropConfig::new(0.01)
                })
                .unwrap(),
            )
        },
        "rmsprop",
    );
    // A state dict without a step count is refused.
    let mut opt = Adam::with_lr(0.1).unwrap();
    let err = opt
        .load_state_dict(&mut Param::new(), &ventral_nn::checkpoint::StateDict::new())
        .unwrap_err();
    assert_eq!(err.to_string(), "optimizer state: no `step` entry");
}

/// The state of `opt` after one step on [`Param`], with `edit` applied to its entries.
fn edited_state(
    opt: &mut dyn Optimizer,
    edit: impl FnOnce(&mut Vec<(String, TensorRecord)>),
) -> StateDict {
    step(&mut Param::new(), opt);
    let mut entries: Vec<(String, TensorRecord)> = opt
        .state_dict()
        .iter()
        .map(|(k, r)| (k.to_string(), r.clone()))
        .collect();
    edit(&mut entries);
    let mut state = StateDict::new();
    for (k, r) in entries {
        state.insert(k, r);
    }
    state
}

fn short_buffer(entries: &mut [(String, TensorRecord)], key: &str) {
    let (_, record) = entries.iter_mut().find(|(k, _)| k == key).unwrap();
    let mut values = record.as_f32().unwrap().to_vec();
    values.pop();
    *record = TensorRecord::new(key, vec![values.len()], TensorData::F32(values)).unwrap();
}

/// Every corrupt optimizer state is refused whole, with the entry named, and leaves the
/// optimizer as it was. Before the check, a buffer one element short panicked in SGD's step
/// (`copy_from_slice`) and indexed out of bounds in Adam's.
#[test]
fn a_corrupt_optimizer_state_is_refused_before_anything_is_restored() {
    let momentum = || {
        Sgd::new(SgdConfig {
            momentum: 0.9,
            ..SgdConfig::new(0.1)
        })
        .unwrap()
    };
    let cases: Vec<(&str, Box<dyn Optimizer>, StateDict, &str)> = vec![
        (
            "sgd buffer one short",
            Box::new(momentum()),
            edited_state(&mut momentum(), |e| short_buffer(e, "momentum_buffer.0")),
            "optimizer state: state dict does not match the model: `momentum_buffer.0` has shape [1], the model needs [2]",
        ),
        (
            "adam buffer one short",
            Box::new(Adam::with_lr(0.1).unwrap()),
            edited_state(&mut Adam::with_lr(0.1).unwrap(), |e| {
                short_buffer(e, "exp_avg_sq.0")
            }),
            "`exp_avg_sq.0` has shape [1], the model needs [2]",
        ),
        (
            "missing momentum buffer",
            Box::new(momentum()),
            edited_state(&mut momentum(), |e| {
                e.retain(|(k, _)| k != "momentum_buffer.0")
            }),
            "missing keys: momentum_buffer.0",
        ),
        (
            "extra key",
            Box::new(momentum()),
            edited_state(&mut momentum(), |e| {
                let r = TensorRecord::new("extra", vec![1], TensorData::F32(vec![0.0])).unwrap();
                e.push(("extra".into(), r));
            }),
            "unexpected keys: extra",
        ),
        (
            "negative step",
            Box::new(momentum()),
            edited_state(&mut momentum(), |e| {
                e[0].1 = TensorRecord::new("step", vec![], TensorData::I64(vec![-3])).unwrap();
            }),
            "optimizer state: `step` is -3, below 0",
        ),
        (
            "step of the wrong shape",
            Box::new(momentum()),
            edited_state(&mut momentum(), |e| {
                e[0].1 = TensorRecord::new("step", vec![2], TensorData::I64(vec![1, 1])).unwrap();
            }),
            "`step` has shape [2], the model needs []",
        ),
    ];
    for (what, mut opt, state, message) in cases {
        let before = opt.state_dict();
        let err = opt.load_state_dict(&mut Param::new(), &state).unwrap_err();
        assert!(err.to_string().contains(message), "{what}: {err}");
        assert_eq!(opt.state_dict(), before, "{what}: nothing restored");
        // The optimizer still steps (no buffer of the wrong length was taken).
        step(&mut Param::new(), opt.as_mut());
    }
}
