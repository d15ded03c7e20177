//! Fused inference (`ventral_nn::layers::fused`): in eval mode without a graph, every zoo
//! model with batch norm runs each `Conv2d → BatchNorm2d (→ ReLU)` as one convolution with
//! the batch norm folded in, and its logits equal the unfused pass's within 1e-5 relative
//! (normwise). The batch norms really are folded away (no `batch_norm` op runs), the folded
//! copy is reused while the parameters stay as they are and made again when one changes,
//! and the parameters themselves are never touched.

use ventral_autograd::profile;
use ventral_models::{Training, build, models};
use ventral_nn::init::shapes_only;
use ventral_nn::layers::fused::without_fusion;
use ventral_nn::{Mode, Module, Slot, Tensor, no_grad, state_dict};

/// A small deterministic generator (xorshift64*), uniform in `[lo, hi)`.
struct Uniform(u64);

impl Uniform {
    fn next(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        lo + (hi - lo) * (bits as f32 / (1u64 << 24) as f32)
    }
}

/// Gives every parameter and buffer values a trained network could have: weights uniform
/// with variance `1 / fan_in`, biases, batch-norm scales, shifts and running statistics away
/// from their initial 1 / 0 (so that folding has something to fold).
fn randomise(model: &mut dyn Module, seed: u64) {
    let mut rng = Uniform(seed | 1);
    model.visit("", &mut |name, slot| {
        let (tensor, kind) = match slot {
            Slot::Parameter(t) | Slot::Buffer(t) => (t, name.rsplit('.').next().unwrap_or("")),
            _ => return,
        };
        let dims = tensor.dims().to_vec();
        let (lo, hi) = match (kind, dims.len()) {
            ("weight", 1) => (0.5, 1.5),
            ("weight", _) => {
                let fan_in: usize = dims[1..].iter().product();
                let a = (3.0 / fan_in as f32).sqrt();
                (-a, a)
            }
            ("running_var", _) => (0.5, 2.0),
            _ => (-0.2, 0.2),
        };
        tensor
            .update(|values| values.iter_mut().for_each(|v| *v = rng.next(lo, hi)))
            .unwrap();
    });
}

/// `‖a − b‖ / ‖b‖`.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        diff += (f64::from(x) - f64::from(y)).powi(2);
        norm += f64::from(y).powi(2);
    }
    (diff / norm).sqrt()
}

/// Every autograd zoo model with batch norm, with an input it takes (the ImageNet networks
/// pool adaptively, so 32x32 keeps the test fast).
fn models_with_batch_norm() -> Vec<(String, Box<dyn Module>, Vec<usize>)> {
    let mut out = Vec::new();
    for info in models().iter().filter(|m| m.training == Training::Autograd) {
        let mut model = shapes_only(|| build(info.name, info.default_classes, 0)).unwrap();
        let has_bn = state_dict(model.as_mut())
            .keys()
            .any(|k| k.ends_with("running_mean"));
        if !has_bn {
            continue;
        }
        let [c, h, w] = match info.input {
            [3, 224, 224] => [3, 32, 32],
            i => i,
        };
        out.push((info.name.to_string(), model, vec![2, c, h, w]));
    }
    out
}

/// Runs `model` on `x` in eval mode without a graph, profiling the ops that ran.
fn infer(model: &dyn Module, x: &Tensor) -> (Vec<f32>, Vec<&'static str>) {
    profile::enable();
    let y = no_grad(|| model.forward(x)).unwrap().to_vec();
    let ops = profile::take().into_iter().map(|e| e.op).collect();
    profile::disable();
    (y, ops)
}

#[test]
fn fused_logits_match_unfused_for_every_zoo_model_with_batch_norm() {
    let zoo = models_with_batch_norm();
    let names: Vec<&str> = zoo.iter().map(|(n, _, _)| n.as_str()).collect();
    for expected in [
        "resnet18",
        "resnet50",
        "resnet20",
        "vgg11_bn",
        "vgg11_cifar",
        "googlenet",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for (i, (name, mut model, input)) in zoo.into_iter().enumerate() {
        randomise(model.as_mut(), 7 + i as u64);
        model.set_mode(Mode::Eval);
        let before = state_dict(model.as_mut());
        let x = Tensor::rand_uniform(input, -1.0, 1.0, 3).unwrap();
        let (fused, fused_ops) = infer(model.as_ref(), &x);
        let (plain, plain_ops) = without_fusion(|| infer(model.as_ref(), &x));
        assert!(
            plain_ops.contains(&"batch_norm") && !fused_ops.contains(&"batch_norm"),
            "{name}: batch norms must run unfused ({plain_ops:?}) and be folded away when fused ({fused_ops:?})"
        );
        assert!(
            plain.iter().all(|v| v.is_finite()),
            "{name}: logits overflowed"
        );
        let error = relative_error(&fused, &plain);
        eprintln!("{name}: fused vs unfused logits, relative error {error:.2e}");
        assert!(
            error <= 1e-5,
            "{name}: fused logits off by {error:e} (relative)"
        );
        let (again, _) = infer(model.as_ref(), &x);
        assert_eq!(
            again, fused,
            "{name}: the cached folding gives the same bits"
        );
        let after = state_dict(model.as_mut());
        for (key, record) in before.iter() {
            assert_eq!(
                after.get(key).map(|r| r.data()),
                Some(record.data()),
                "{name}: {key} changed by inference"
            );
        }
    }
}

#[test]
fn a_changed_parameter_or_statistic_is_folded_again() {
    let mut model = build("resnet20", 10, 0).unwrap();
    randomise(model.as_mut(), 5);
    model.set_mode(Mode::Eval);
    let x = Tensor::rand_uniform([2, 3, 32, 32], -1.0, 1.0, 4).unwrap();
    let (first, _) = infer(model.as_ref(), &x);
    // Change one running variance (a buffer), then one convolution weight (a parameter),
    // in place as an optimizer or a state-dict load would.
    for target in ["layer3.2.bn2.running_var", "layer1.0.conv1.weight"] {
        model.visit("", &mut |name, slot| {
            if let (true, Slot::Parameter(t) | Slot::Buffer(t)) = (name == target, slot) {
                t.update(|v| v.iter_mut().for_each(|x| *x *= 1.5)).unwrap();
            }
        });
        let (fused, _) = infer(model.as_ref(), &x);
        let (plain, _) = without_fusion(|| infer(model.as_ref(), &x));
        assert_ne!(fused, first, "{target}: the output must change");
        let error = relative_error(&fused, &plain);
        assert!(error <= 1e-5, "after changing {target}: off by {error:e}");
    }
}

#[test]
fn training_mode_and_recorded_graphs_never_fuse() {
    let mut model = build("resnet20", 10, 0).unwrap();
    let x = Tensor::rand_uniform([2, 3, 32, 32], -1.0, 1.0, 4).unwrap();
    // Eval mode but with a graph (e.g. a saliency map): unfused, so gradients reach every
    // parameter.
    model.set_mode(Mode::Eval);
    profile::enable();
    let y = model.forward(&x).unwrap();
    let ops: Vec<&str> = profile::take().into_iter().map(|e| e.op).collect();
    profile::disable();
    assert!(ops.contains(&"batch_norm"), "{ops:?}");
    assert!(y.requires_grad());
    // Training mode without a graph: batch statistics, never folded.
    model.set_mode(Mode::Train);
    let (_, ops) = infer(model.as_ref(), &x);
    assert!(ops.contains(&"batch_norm"), "{ops:?}");
}
