//! The checker must be able to fail: ops with deliberately wrong backward passes are caught,
//! also where the gradient is small (the tolerance is relative to each input's largest
//! derivative, see `gradcheck`'s docs).

use ventral_autograd::{GradcheckOptions, Tensor, gradcheck, scale_gradient};

/// `cube(x) = x³` with a backward that returns `3x² · dy` scaled by `factor` (1 is right).
fn cube(x: &Tensor, factor: f32) -> ventral_autograd::Result<Tensor> {
    let xs = x.to_vec();
    let y: Vec<f32> = xs.iter().map(|v| v * v * v).collect();
    Tensor::from_op("cube", y, x.shape().clone(), &[x], move |ctx| {
        let dx = ctx
            .grad()
            .iter()
            .zip(&xs)
            .map(|(g, v)| g * 3.0 * v * v * factor)
            .collect();
        Ok(vec![Some(dx)])
    })
}

fn x() -> Tensor {
    Tensor::from_vec(vec![0.5, -1.0, 1.5, 2.0], [4]).unwrap()
}

#[test]
fn correct_backward_passes() {
    let report = gradcheck(|t| cube(&t[0], 1.0), &[x()], &GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
    // Errors are tiny for an exact backward: x³ is a cubic, so the five-point stencil has no
    // truncation error and only f32 rounding (~1e-5 here) remains.
    assert!(report.inputs[0].max_abs_error < 1e-4, "{report}");
}

#[test]
fn wrong_backward_fails() {
    // 5 % too large: the error at the element with the largest derivative G is 0.05·G,
    // five times the tolerance atol + rtol·G ≈ 0.01·G.
    let report = gradcheck(|t| cube(&t[0], 1.05), &[x()], &GradcheckOptions::default()).unwrap();
    assert!(!report.passed(), "a 5% wrong backward passed:\n{report}");
    let worst = &report.inputs[0];
    // The worst element is where the derivative 3x²·w is largest relative to its tolerance.
    assert!(
        worst.max_rel_error > 0.04 && worst.max_rel_error < 0.06,
        "{report}"
    );
}

#[test]
fn missing_gradient_fails() {
    // A backward that forgets an input (returns None) is checked as a zero gradient.
    let report = gradcheck(
        |t| {
            let (a, b) = (t[0].clone(), t[1].clone());
            let y: Vec<f32> = a
                .to_vec()
                .iter()
                .zip(b.to_vec())
                .map(|(p, q)| p * q)
                .collect();
            let bs = b.to_vec();
            Tensor::from_op("bad_mul", y, a.shape().clone(), &[&a, &b], move |ctx| {
                let da = ctx.grad().iter().zip(&bs).map(|(g, q)| g * q).collect();
                Ok(vec![Some(da), None])
            })
        },
        &[x(), x()],
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.inputs[0].passed, "{report}");
    assert!(!report.inputs[1].passed, "{report}");
    assert!(!report.passed());
}

/// `mean(x)` over all elements, with a backward that returns `dy / n` scaled by `factor`.
fn mean(x: &Tensor, factor: f32) -> ventral_autograd::Result<Tensor> {
    let n = x.numel();
    let y = x.to_vec().iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    Tensor::from_op("mean", vec![y as f32], [1], &[x], move |ctx| {
        Ok(vec![Some(vec![ctx.grad()[0] * factor / n as f32; n])])
    })
}

#[test]
fn a_five_percent_error_on_small_gradients_fails() {
    // The case: the derivative of a mean over n elements is w/n (w the projection
    // weight, |w| < 1), below 0.025 for n >= 40. Under the old per-element rule
    // (|a - n| <= 1e-3 + 1e-2·|n|) a 5 % error 0.05·|n| passed wherever |n| < 0.025.
    let options = GradcheckOptions::default();
    for n in [24, 48, 100] {
        let x = Tensor::rand_uniform([n], -2.0, 2.0, n as u64).unwrap();
        let right = gradcheck(|t| mean(&t[0], 1.0), std::slice::from_ref(&x), &options).unwrap();
        assert!(right.passed(), "n = {n}:\n{right}");
        let wrong = gradcheck(|t| mean(&t[0], 1.05), &[x], &options).unwrap();
        assert!(!wrong.passed(), "n = {n}: a 5 % error passed:\n{wrong}");
        let r = &wrong.inputs[0];
        assert!(
            r.scale < 0.025,
            "n = {n}: the gradient is not small:\n{wrong}"
        );
        // ... where the old rule would have let it through.
        let old_allowed = 1e-3 + 1e-2 * r.worst_numeric.abs();
        assert!(r.max_abs_error < old_allowed, "n = {n}:\n{wrong}");
    }
}

#[test]
fn backward_scale_mutates_the_backward_of_any_check() {
    // The same mean, right, checked with `backward_scale` 1.05: the option's identity op
    // scales the gradient flowing into the function, and the check fails.
    let options = GradcheckOptions::default().with_backward_scale(1.05);
    let x = Tensor::rand_uniform([48], -2.0, 2.0, 3).unwrap();
    let wrong = gradcheck(|t| mean(&t[0], 1.0), &[x], &options).unwrap();
    assert!(!wrong.passed(), "{wrong}");
    assert!(
        (wrong.inputs[0].max_rel_error - 0.05).abs() < 0.005,
        "{wrong}"
    );
}

#[test]
fn scale_gradient_is_the_identity_forward_and_scales_backward() {
    let x = Tensor::from_vec(vec![1.5, -2.0], [2]).unwrap().with_grad();
    let y = scale_gradient(&x, 1.05).unwrap();
    assert_eq!(y.to_vec(), [1.5, -2.0]);
    // d(sum)/dx = 1 per element, times 1.05 (the f32 product 1.0 · 1.05 is exact).
    let g = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec(), [1.05f32, 1.05]);
}

#[test]
fn uncaught_leaves_out_gradients_below_atol() {
    // f(a, b) = a + 1e-6·b: b's derivative (1e-6·w) is far below atol = 1e-4, so a 5 %
    // error in it cannot be seen, and `uncaught` does not demand it; a's must be caught.
    let (a, b) = (x(), x());
    let options = GradcheckOptions::default();
    let f = |t: &[Tensor]| t[0].add(&t[1].mul_scalar(1e-6)?);
    let right = gradcheck(f, &[a.clone(), b.clone()], &options).unwrap();
    assert!(right.passed(), "{right}");
    let mutation = options.with_backward_scale(1.05);
    let wrong = gradcheck(f, &[a, b], &mutation).unwrap();
    assert!(!wrong.inputs[0].passed && wrong.inputs[1].passed, "{wrong}");
    assert!(right.uncaught(&wrong, &mutation).is_empty());
    // Had a's check passed, `uncaught` would name it.
    let mut blind = wrong.clone();
    blind.inputs[0].passed = true;
    assert_eq!(right.uncaught(&blind, &mutation), [0]);
}

#[test]
fn a_nan_gradient_fails() {
    let report = gradcheck(
        |t| {
            Tensor::from_op(
                "nan_grad",
                t[0].to_vec(),
                t[0].shape().clone(),
                &[&t[0]],
                |ctx| Ok(vec![Some(vec![f32::NAN; ctx.grad().len()])]),
            )
        },
        &[x()],
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(!report.passed(), "{report}");
}
