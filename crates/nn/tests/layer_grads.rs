//! Every layer gradient-checked through autograd: the input's gradient and each
//! parameter's, against central differences (`ventral_autograd::gradcheck`, default
//! tolerances; see its docs for why they fit f32), and each check repeated with the
//! backward 5 % off to show it would catch that.

use ventral_autograd::{GradcheckOptions, gradcheck};
use ventral_nn::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Dropout, ELU, LeakyReLU,
    LocalResponseNorm, Maxout, PReLU,
};
use ventral_nn::{Init, LrnParams, Mode, Module, Slot, Tensor};

/// Random values in ±[0.1, 1.1): uniform, pushed away from 0 so that no finite-difference
/// step (≤ 2h = 1/64) crosses the kink of a ReLU-like function.
fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
    let u = Tensor::rand_uniform(shape.to_vec(), -1.0, 1.0, seed).unwrap();
    let v: Vec<f32> = u
        .to_vec()
        .iter()
        .map(|&x| x.signum() * (x.abs() + 0.1))
        .collect();
    Tensor::from_vec(v, shape.to_vec()).unwrap()
}

/// Runs `layer`, turning a layer error into the checker's error type.
fn run(layer: &dyn Module, x: &Tensor) -> ventral_autograd::Result<Tensor> {
    layer
        .forward(x)
        .map_err(|e| ventral_autograd::Error::InvalidArgument {
            op: "layer",
            detail: e.to_string(),
        })
}

/// A copy of `layer` whose parameters are `params`, in visit order (the gradient checker's
/// leaves, so their gradients are found).
fn with_params<M: Module + Clone>(layer: &M, params: &[Tensor]) -> M {
    let mut copy = layer.clone();
    let mut i = 0;
    copy.visit("", &mut |_, slot| {
        if let Slot::Parameter(p) = slot {
            *p = params[i].clone();
            i += 1;
        }
    });
    assert_eq!(i, params.len(), "parameter count");
    copy
}

fn parameters(layer: &mut dyn Module) -> Vec<Tensor> {
    ventral_nn::named_parameters(layer)
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

/// Gradchecks `layer` with respect to `x` and all its parameters; then checks again with
/// every backward 5 % too large and asserts that this fails at every input whose gradient
/// makes a 5 % error visible (`GradcheckReport::uncaught`).
#[track_caller]
fn check<M: Module + Clone>(mut layer: M, x: Tensor) {
    let mut inputs = vec![x];
    inputs.extend(parameters(&mut layer));
    let f = |t: &[Tensor]| run(&with_params(&layer, &t[1..]), &t[0]);
    let options = GradcheckOptions::default();
    let report = gradcheck(f, &inputs, &options).unwrap();
    assert!(report.passed(), "{}:\n{report}", layer.describe());
    let mutation = options.with_backward_scale(1.05);
    let mutated = gradcheck(f, &inputs, &mutation).unwrap();
    let uncaught = report.uncaught(&mutated, &mutation);
    assert!(
        !mutated.passed() && uncaught.is_empty(),
        "{}: a backward 5 % off passed at inputs {uncaught:?}:\n{mutated}",
        layer.describe()
    );
}

/// Sets every parameter and buffer to values drawn from `seed` (in `[lo, hi)`), so that a
/// check does not start from the all-ones / all-zeros initialisation.
fn randomise(layer: &mut dyn Module, seed: u64, lo: f32, hi: f32) {
    let mut k = seed;
    layer.visit("", &mut |_, slot| {
        if let Slot::Parameter(t) | Slot::Buffer(t) = slot {
            k += 1;
            let r = Tensor::rand_uniform(t.dims().to_vec(), lo, hi, k)
                .unwrap()
                .to_vec();
            t.update(|d| d.copy_from_slice(&r)).unwrap();
        }
    });
}

#[test]
fn batch_norm_1d_train_and_eval() {
    let mut bn = BatchNorm1d::new(3).unwrap();
    randomise(&mut bn, 1, 0.5, 1.5);
    // Batch statistics (train): the gradient flows through the mean and variance too.
    check(
        bn.clone(),
        Tensor::rand_normal([6, 3], 0.0, 1.0, 2).unwrap(),
    );
    check(
        bn.clone(),
        Tensor::rand_normal([4, 3, 5], 0.0, 1.0, 3).unwrap(),
    );
    // Running statistics (eval): a fixed affine map.
    bn.set_mode(Mode::Eval);
    check(bn, Tensor::rand_normal([6, 3], 0.0, 1.0, 4).unwrap());
}

#[test]
fn batch_norm_2d_train_and_eval() {
    let mut bn = BatchNorm2d::new(2).unwrap();
    randomise(&mut bn, 5, 0.5, 1.5);
    check(
        bn.clone(),
        Tensor::rand_normal([2, 2, 3, 3], 0.0, 1.0, 6).unwrap(),
    );
    bn.set_mode(Mode::Eval);
    check(bn, Tensor::rand_normal([2, 2, 3, 3], 0.0, 1.0, 7).unwrap());
}

#[test]
fn dropout_with_its_mask_fixed() {
    // Every evaluation of the checked function runs a clone with the same call counter,
    // so the same mask: dropout is then linear in x.
    check(
        Dropout::new(0.3, 9).unwrap(),
        Tensor::rand_normal([4, 5], 0.0, 1.0, 8).unwrap(),
    );
}

#[test]
fn pools() {
    check(
        AvgPool2d::new(2),
        Tensor::rand_normal([2, 2, 4, 4], 0.0, 1.0, 10).unwrap(),
    );
    let padded = ventral_nn::AvgPool2dParams::square(3)
        .with_stride((2, 2))
        .with_padding((1, 1));
    check(
        AvgPool2d::with_params(padded),
        Tensor::rand_normal([1, 2, 5, 5], 0.0, 1.0, 11).unwrap(),
    );
    check(
        AdaptiveAvgPool2d::new((2, 3)),
        Tensor::rand_normal([2, 1, 5, 7], 0.0, 1.0, 12).unwrap(),
    );
}

#[test]
fn local_response_norm() {
    // A large α makes the normaliser matter (PyTorch's 1e-4 would leave b ≈ a).
    let params = LrnParams::new(3).with_alpha(0.5).with_k(2.0);
    check(
        LocalResponseNorm::new(params),
        Tensor::rand_normal([2, 4, 2, 2], 0.0, 1.0, 13).unwrap(),
    );
}

#[test]
fn activations() {
    check(LeakyReLU::new(0.1), away_from_zero(&[3, 4], 14));
    check(ELU::new(1.5), away_from_zero(&[3, 4], 15));
    // PReLU: the gradient of the slope is Σ min(x, 0) over what shares it.
    check(PReLU::new(1).unwrap(), away_from_zero(&[3, 4], 16));
    let mut per_channel = PReLU::new(3).unwrap();
    randomise(&mut per_channel, 17, 0.1, 0.5);
    check(per_channel, away_from_zero(&[2, 3, 2, 2], 18));
}

#[test]
fn maxout() {
    // Random weights: with this seed no two pieces of a unit come within a step of a tie.
    let layer = Maxout::new(4, 3, 3, &mut Init::new(19)).unwrap();
    check(layer, Tensor::rand_normal([5, 4], 0.0, 1.0, 20).unwrap());
}

/// The checker is able to fail: a layer whose forward is scaled after the fact (a stand-in
/// for a wrong backward) does not pass.
#[test]
fn a_wrong_gradient_is_caught() {
    let x = away_from_zero(&[3, 4], 21);
    let report = gradcheck(
        |t| {
            // Forward value of 1.05 · leaky_relu, but the gradient of leaky_relu only: the
            // scaling is applied to a detached copy.
            let y = run(&LeakyReLU::new(0.1), &t[0])?;
            let extra = y.detach().mul_scalar(0.05)?;
            y.add(&extra)
        },
        &[x],
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(!report.passed(), "{report}");
}
