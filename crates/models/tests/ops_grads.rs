//! Gradient checks of the zoo's two hand-written ops (`cat_channels`, GoogLeNet's Inception
//! join, and `shortcut_option_a`, the CIFAR ResNets' shortcut), each also repeated with the
//! backward 5 % off to show the check would catch that (see `ventral_autograd::gradcheck`
//! for the method and tolerances).

use ventral_autograd::{GradcheckOptions, gradcheck};
use ventral_models::{cat_channels, shortcut_option_a};
use ventral_nn::Tensor;

/// Turns a model-op error into the checker's error type.
fn lift(r: ventral_nn::Result<Tensor>) -> ventral_autograd::Result<Tensor> {
    r.map_err(|e| ventral_autograd::Error::InvalidArgument {
        op: "models op",
        detail: e.to_string(),
    })
}

/// Gradchecks `f` at `inputs`, then again with every backward 5 % too large, which must fail
/// at every input whose gradient makes that visible.
#[track_caller]
fn check(f: impl Fn(&[Tensor]) -> ventral_autograd::Result<Tensor>, inputs: &[Tensor]) {
    let options = GradcheckOptions::default();
    let report = gradcheck(&f, inputs, &options).unwrap();
    assert!(report.passed(), "{report}");
    let mutation = options.with_backward_scale(1.05);
    let mutated = gradcheck(&f, inputs, &mutation).unwrap();
    let uncaught = report.uncaught(&mutated, &mutation);
    assert!(
        !mutated.passed() && uncaught.is_empty(),
        "a backward 5 % off passed at inputs {uncaught:?}:\n{mutated}"
    );
}

fn uniform(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(shape.to_vec(), -2.0, 2.0, seed).unwrap()
}

#[test]
fn cat_channels_of_four_branches() {
    // An Inception block joins four branches of different widths; a batch of 2 makes the
    // per-image interleaving of the gradient's slices matter.
    let xs: Vec<Tensor> = [1, 2, 3, 2]
        .iter()
        .zip(1..)
        .map(|(&c, seed)| uniform(&[2, c, 3, 3], seed))
        .collect();
    check(|t| lift(cat_channels(&t.iter().collect::<Vec<_>>())), &xs);
}

#[test]
fn shortcut_option_a_subsamples_and_pads() {
    // 4 -> 8 channels at stride 2 (2 zero channels before, 2 after), as between the CIFAR
    // ResNets' stages, on an even and an odd map (⌈5/2⌉ = 3 keeps the last row and column).
    check(
        |t| lift(shortcut_option_a(&t[0], 8, 2)),
        &[uniform(&[2, 4, 6, 6], 11)],
    );
    check(
        |t| lift(shortcut_option_a(&t[0], 8, 2)),
        &[uniform(&[2, 4, 5, 5], 12)],
    );
    // An odd number of padded channels (3 -> 6: 1 before, 2 after), and stride 1.
    check(
        |t| lift(shortcut_option_a(&t[0], 6, 1)),
        &[uniform(&[2, 3, 3, 4], 13)],
    );
}
