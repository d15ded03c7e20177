//! `set_mode` reaches every dropout and batch norm of every zoo model: containers walk their
//! children by construction (`Module::for_each_child`), and this test holds them to it two ways.
//! The walk: every module with a mode of its own (`Module::mode`) must report eval after
//! `set_mode(Mode::Eval)`, and every batch norm and dropout that the state walk (`visit`) names
//! must be among them. The behaviour, which does not trust any walk: in eval mode two forward
//! passes give the same bits (a dropout left in training mode draws a new mask) and leave the
//! buffers, counters and random-number positions alone (a batch norm left in training mode
//! updates its running statistics and counter; a dropout advances its call counter).

use std::collections::BTreeSet;

use ventral_models::{AuxLogits, GoogLeNet, Training, build, models};
use ventral_nn::init::shapes_only;
use ventral_nn::{Mode, Module, Slot, Tensor, modes};

/// Every autograd model of the zoo, plus GoogLeNet with its auxiliary heads (the registry
/// builds it without), each with the input to run it on: the registry's, or a smaller map for
/// the ImageNet networks, which pool adaptively (32x32; AlexNet's pools need 64x64).
fn zoo() -> Vec<(String, Box<dyn Module>, [usize; 3])> {
    let mut out = Vec::new();
    for info in models().iter().filter(|m| m.training == Training::Autograd) {
        let model = shapes_only(|| build(info.name, info.default_classes, 0)).unwrap();
        let input = match (info.name, info.input) {
            ("alexnet_paper", i) => i,
            ("alexnet", _) => [3, 64, 64],
            (_, [3, 224, 224]) => [3, 32, 32],
            (_, i) => i,
        };
        out.push((info.name.to_string(), model, input));
    }
    let aux = shapes_only(|| GoogLeNet::new(10, AuxLogits::With, 0)).unwrap();
    out.push(("googlenet+aux".into(), Box::new(aux), [3, 32, 32]));
    out
}

/// The paths of the modules that `visit` shows to have a mode, with their kind: a batch
/// norm's `running_mean` buffer and a dropout's `rng_calls` counter, minus the local name.
fn moded_by_visit(model: &mut dyn Module) -> BTreeSet<(String, &'static str)> {
    let mut out = BTreeSet::new();
    model.visit("", &mut |name, slot| {
        let owner = |local: &str| name.strip_suffix(local).map(|p| p.trim_end_matches('.'));
        match slot {
            Slot::Buffer(_) => {
                if let Some(p) = owner("running_mean") {
                    out.insert((p.to_string(), "BatchNorm"));
                }
            }
            Slot::Rng(_) => {
                if let Some(p) = owner("rng_calls") {
                    out.insert((p.to_string(), "Dropout"));
                }
            }
            _ => {}
        }
    });
    out
}

#[test]
fn set_mode_eval_reaches_every_dropout_and_batch_norm_of_every_model() {
    let mut seen_dropout = false;
    let mut seen_bn = false;
    for (name, mut model, _) in zoo() {
        let before = modes(model.as_mut(), "");
        assert!(
            before.iter().all(|(_, m)| *m == Mode::Train),
            "{name}: a fresh model starts in training mode: {before:?}"
        );
        model.set_mode(Mode::Eval);
        let after = modes(model.as_mut(), "");
        let still_training: Vec<&String> = after
            .iter()
            .filter(|(_, m)| *m == Mode::Train)
            .map(|(p, _)| p)
            .collect();
        assert!(
            still_training.is_empty(),
            "{name}: still in training mode after set_mode(Eval): {still_training:?}"
        );
        let walked: BTreeSet<String> = after.into_iter().map(|(p, _)| p).collect();
        let visited = moded_by_visit(model.as_mut());
        let hidden: Vec<&(String, &str)> = visited
            .iter()
            .filter(|(p, _)| !walked.contains(p))
            .collect();
        assert!(
            hidden.is_empty(),
            "{name}: visited but not reached by for_each_child: {hidden:?}"
        );
        seen_dropout |= visited.iter().any(|(_, kind)| *kind == "Dropout");
        seen_bn |= visited.iter().any(|(_, kind)| *kind == "BatchNorm");
    }
    // The zoo has both kinds, or this test would prove nothing.
    assert!(seen_dropout && seen_bn);
}

/// What a forward pass may change: the training state (`training_state`) without the
/// parameters, which no forward pass writes (buffers, counters and random-number positions).
fn mutable_state(model: &mut dyn Module) -> Vec<(String, Vec<f32>, i64)> {
    let mut out = Vec::new();
    model.visit("", &mut |name, slot| match slot {
        Slot::Parameter(_) => {}
        Slot::Buffer(t) => out.push((name.to_string(), t.to_vec(), 0)),
        Slot::Counter(c) => out.push((name.to_string(), Vec::new(), *c)),
        Slot::Rng(r) => out.push((name.to_string(), Vec::new(), *r as i64)),
    });
    out
}

#[test]
fn eval_forward_is_repeatable_and_leaves_the_training_state_alone() {
    for (name, mut model, [c, h, w]) in zoo() {
        // Weights from shapes_only are zeros; give the forward pass something to compute: a
        // cheap positive pattern of mean about 1/(2·fan_in) for parameters, so activations
        // neither die at a ReLU nor overflow with depth (random draws for VGG's 138 million
        // weights would dominate the test); running means 0, running variances in [0.5, 1.5).
        model.visit("", &mut |name, slot| match slot {
            Slot::Parameter(t) => {
                let fan_in = t.numel() / t.dims().first().copied().unwrap_or(1).max(1);
                let scale = 1.0 / fan_in.max(1) as f32;
                t.update(|d| {
                    for (i, v) in d.iter_mut().enumerate() {
                        *v = (1 + (i & 7)) as f32 / 8.0 * scale;
                    }
                })
                .unwrap();
            }
            Slot::Buffer(t) => {
                let var = name.ends_with("running_var");
                t.update(|d| {
                    for (i, v) in d.iter_mut().enumerate() {
                        *v = if var { 0.5 + (i & 7) as f32 / 8.0 } else { 0.0 };
                    }
                })
                .unwrap();
            }
            _ => {}
        });
        model.set_mode(Mode::Eval);
        let x = Tensor::rand_uniform([2, c, h, w], 0.0, 1.0, 7).unwrap();
        let state = mutable_state(model.as_mut());
        let bits = |y: Tensor| y.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let y1 = bits(model.forward(&x).unwrap());
        let y2 = bits(model.forward(&x).unwrap());
        // A dropout can only show itself on outputs that are not all zero.
        assert!(
            y1.iter().any(|&b| b != 0),
            "{name}: the output is all zeros"
        );
        assert_eq!(y1, y2, "{name}: two eval forward passes differ");
        assert!(
            mutable_state(model.as_mut()) == state,
            "{name}: an eval forward pass changed the training state"
        );
    }
}
