//! The checker must be able to fail: ops with deliberately wrong backward passes are caught.

use ventral_autograd::{GradcheckOptions, Tensor, gradcheck};

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
    // 5 % too large: at x = 2 the true derivative (times the projection weight) is up to
    // 12 in size, so the error 0.6·|w| dwarfs atol + rtol·12 = 0.121·|w|.
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
