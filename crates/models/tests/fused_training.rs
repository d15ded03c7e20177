//! Fused training (`ventral_nn::layers::fused::bn_relu`): with a graph and in training mode,
//! every `BatchNorm2d → ReLU` of the zoo's CIFAR networks (ResNet-20's blocks and stem,
//! VGG-11-BN's `Sequential` chain) runs as one `batch_norm_relu` op, and a training step
//! gives the same bits as the layers run apart ([`without_fusion`]): logits, loss, every
//! parameter's gradient and every running statistic.

use ventral_autograd::profile;
use ventral_models::build;
use ventral_nn::layers::fused::without_fusion;
use ventral_nn::loss::cross_entropy;
use ventral_nn::{Slot, Tensor};

/// What one training step produced: the logits, the loss, each parameter's gradient and
/// the buffers and counters after the step (running statistics, batches tracked), all as bits, and the ops
/// that ran forward.
struct Step {
    logits: Vec<u32>,
    loss: u32,
    grads: Vec<(String, Vec<u32>)>,
    state: Vec<(String, Vec<u32>)>,
    ops: Vec<&'static str>,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Builds `name` (seed 0), runs one forward and backward in training mode on a fixed batch.
fn step(name: &str) -> Step {
    let mut model = build(name, 10, 0).unwrap();
    let x = Tensor::rand_uniform([4, 3, 32, 32], -1.0, 1.0, 11).unwrap();
    let labels = [1usize, 7, 3, 9];
    profile::enable();
    let logits = model.forward(&x).unwrap();
    let ops = profile::take().into_iter().map(|e| e.op).collect();
    profile::disable();
    let loss = cross_entropy(&logits, &labels, 0.0).unwrap();
    let g = loss.backward().unwrap();
    let mut grads = Vec::new();
    model.visit("", &mut |name, slot| {
        if let Slot::Parameter(p) = slot {
            let grad = g.get(p).expect("every parameter gets a gradient");
            grads.push((name.to_string(), bits(&grad.to_vec())));
        }
    });
    let mut state = Vec::new();
    model.visit("", &mut |name, slot| match slot {
        Slot::Buffer(t) => state.push((name.to_string(), bits(&t.to_vec()))),
        Slot::Counter(n) => state.push((name.to_string(), vec![*n as u32])),
        _ => {}
    });
    Step {
        logits: bits(&logits.to_vec()),
        loss: loss.item().unwrap().to_bits(),
        grads,
        state,
        ops,
    }
}

#[test]
fn fused_training_step_equals_the_layers_apart() {
    for name in ["resnet20", "vgg11_cifar"] {
        let fused = step(name);
        let apart = without_fusion(|| step(name));
        assert!(
            fused.ops.contains(&"batch_norm_relu"),
            "{name}: {:?}",
            fused.ops
        );
        assert!(
            !apart.ops.contains(&"batch_norm_relu"),
            "{name}: {:?}",
            apart.ops
        );
        assert!(apart.ops.contains(&"relu"), "{name}: {:?}", apart.ops);
        assert_eq!(fused.logits, apart.logits, "{name}: logits");
        assert_eq!(fused.loss, apart.loss, "{name}: loss");
        assert!(!fused.grads.is_empty() && !fused.state.is_empty());
        for ((n, a), (_, b)) in fused.grads.iter().zip(&apart.grads) {
            assert_eq!(a, b, "{name}: gradient of {n}");
        }
        for ((n, a), (_, b)) in fused.state.iter().zip(&apart.state) {
            assert_eq!(a, b, "{name}: {n} after the step");
        }
    }
}
