//! `clip_grad_norm`: the joint norm it reports, the scaling above the bound, nothing below
//! it, and clear errors for a bad bound or non-finite gradients.

use ventral_nn::layers::Linear;
use ventral_nn::optim::clip_grad_norm;
use ventral_nn::{Gradients, Init, Module, Tensor, named_parameters};

/// A 3 -> 2 linear layer and the gradients of the sum of squares of its output on a fixed
/// batch.
fn model_and_grads() -> (Linear, Gradients) {
    let model = Linear::new(3, 2, true, &mut Init::new(5)).unwrap();
    let x = Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0, 0.25, -1.5], [2, 3]).unwrap();
    let y = model.forward(&x).unwrap();
    let grads = y.mul(&y).unwrap().sum_all().unwrap().backward().unwrap();
    (model, grads)
}

fn grad_values(model: &mut Linear, grads: &Gradients) -> Vec<Vec<f32>> {
    named_parameters(model)
        .iter()
        .map(|(_, p)| grads.get(p).unwrap().to_vec())
        .collect()
}

#[test]
fn clips_to_the_bound_and_reports_the_norm_before() {
    let (mut model, mut grads) = model_and_grads();
    let before = grad_values(&mut model, &grads);
    let norm_f64: f64 = before
        .iter()
        .flatten()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    assert!(
        norm_f64 > 1.0,
        "the test needs a norm above the bound: {norm_f64}"
    );
    let norm = clip_grad_norm(&mut model, &mut grads, 0.5).unwrap();
    assert_eq!(norm, norm_f64 as f32);
    let after = grad_values(&mut model, &grads);
    let new_norm: f64 = after
        .iter()
        .flatten()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    assert!((new_norm - 0.5).abs() < 1e-5, "clipped norm {new_norm}");
    // One factor for every gradient: the direction is kept.
    let scale = 0.5 / (f64::from(norm) + 1e-6);
    for (b, a) in before.iter().flatten().zip(after.iter().flatten()) {
        assert!(
            (f64::from(*a) - f64::from(*b) * scale).abs() <= 1e-6 * f64::from(b.abs()).max(1.0)
        );
    }
}

#[test]
fn leaves_gradients_under_the_bound_alone() {
    let (mut model, mut grads) = model_and_grads();
    let before = grad_values(&mut model, &grads);
    let norm = clip_grad_norm(&mut model, &mut grads, 1e6).unwrap();
    assert!(norm > 0.0);
    assert_eq!(grad_values(&mut model, &grads), before);
}

#[test]
fn bad_bounds_and_non_finite_gradients_are_errors() {
    let (mut model, mut grads) = model_and_grads();
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let e = clip_grad_norm(&mut model, &mut grads, bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_norm must be a finite number > 0"), "{e}");
    }
    let weight = named_parameters(&mut model)[0].1.clone();
    let shape = weight.dims().to_vec();
    let mut values = vec![0.0; weight.numel()];
    values[1] = f32::NAN;
    grads
        .insert(&weight, Tensor::from_vec(values, shape).unwrap())
        .unwrap();
    let e = clip_grad_norm(&mut model, &mut grads, 1.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not finite"), "{e}");
}
