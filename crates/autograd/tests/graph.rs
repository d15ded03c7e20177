//! The graph machinery: backward, gradient accumulation, no_grad, detach, anomaly mode,
//! scopes, DOT export, error messages, determinism.

use ventral_autograd::{
    AnomalyMode, BackwardOptions, Conv2dParams, Error, Gradients, MaxPool2dParams, Phase, Scope,
    Tensor, cross_entropy, no_grad, to_dot,
};

fn grad_of(g: &Gradients, t: &Tensor) -> Vec<f32> {
    g.get(t).expect("a gradient").to_vec()
}

#[test]
fn tensors_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Tensor>();
    send_sync::<Gradients>();
}

#[test]
fn lecture_example_with_methods() {
    // f = (x + y)·z at (-2, 5, -4): q = 3, f = -12; ∂f/∂x = ∂f/∂y = z = -4, ∂f/∂z = q = 3.
    let x = Tensor::scalar(-2.0).with_grad();
    let y = Tensor::scalar(5.0).with_grad();
    let z = Tensor::scalar(-4.0).with_grad();
    let f = x.add(&y).unwrap().mul(&z).unwrap();
    assert_eq!(f.item().unwrap(), -12.0);
    let g = f.backward().unwrap();
    assert_eq!(grad_of(&g, &x), [-4.0]);
    assert_eq!(grad_of(&g, &y), [-4.0]);
    assert_eq!(grad_of(&g, &z), [3.0]);
}

#[test]
fn shared_input_gradients_add_up() {
    // f = x·x + x at x = 3: df/dx = 2x + 1 = 7 (two paths through mul, one through add).
    let x = Tensor::scalar(3.0).with_grad();
    let f = x.mul(&x).unwrap().add(&x).unwrap();
    assert_eq!(grad_of(&f.backward().unwrap(), &x), [7.0]);
}

#[test]
fn leaf_gradients_accumulate_until_cleared() {
    // d(2w)/dw = 2 per call: two calls give 4, and after clear one call gives 2 again.
    let w = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap().with_grad();
    let mut grads = Gradients::new();
    for _ in 0..2 {
        w.mul_scalar(2.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward_into(&mut grads)
            .unwrap();
    }
    assert_eq!(grad_of(&grads, &w), [4.0, 4.0]);
    grads.clear();
    assert!(grads.is_empty());
    w.mul_scalar(2.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward_into(&mut grads)
        .unwrap();
    assert_eq!(grad_of(&grads, &w), [2.0, 2.0]);
}

#[test]
fn intermediate_gradients_only_on_request() {
    // h = 3x, f = h²: df/dh = 2h = 6 at x = 1; by default only the leaf is stored.
    let x = Tensor::scalar(1.0).with_grad();
    let h = x.mul_scalar(3.0).unwrap();
    let f = h.pow(2.0).unwrap();
    let g = f.backward().unwrap();
    assert!(g.get(&h).is_none());
    assert_eq!(grad_of(&g, &x), [18.0]); // 2h · 3
    // That backward freed h's graph too; rebuild it and ask for every gradient.
    let h = x.mul_scalar(3.0).unwrap();
    let f = h.pow(2.0).unwrap();
    let mut all = Gradients::new();
    let opts = BackwardOptions {
        retain_graph: false,
        keep_intermediate: true,
    };
    f.backward_with(&mut all, opts).unwrap();
    assert_eq!(grad_of(&all, &h), [6.0]);
}

#[test]
fn backward_twice_needs_retain_graph() {
    let x = Tensor::scalar(2.0).with_grad();
    let f = x.exp().unwrap();
    f.backward().unwrap();
    let err = f.backward().unwrap_err();
    assert!(matches!(err, Error::Backward { .. }), "{err}");
    assert!(err.to_string().contains("already freed"), "{err}");
}

#[test]
fn backward_needs_a_scalar_that_requires_grad() {
    let x = Tensor::ones([2]).unwrap().with_grad();
    let err = x.mul_scalar(2.0).unwrap().backward().unwrap_err();
    assert!(err.to_string().contains("shape [2]"), "{err}");
    let c = Tensor::scalar(1.0).exp().unwrap();
    assert!(matches!(c.backward().unwrap_err(), Error::Backward { .. }));
}

#[test]
fn no_grad_records_nothing() {
    let w = Tensor::from_vec(vec![1.0, -2.0], [2]).unwrap().with_grad();
    let y = no_grad(|| {
        w.mul_scalar(3.0)
            .unwrap()
            .relu()
            .unwrap()
            .sum_all()
            .unwrap()
    });
    assert!(y.is_leaf(), "an op under no_grad recorded a node");
    assert!(!y.requires_grad());
    assert_eq!(y.op(), None);
    assert_eq!(y.item().unwrap(), 3.0); // relu([3, -6]) summed
    // Recording is back on afterwards.
    assert!(ventral_autograd::is_grad_enabled());
    assert_eq!(w.mul_scalar(3.0).unwrap().op(), Some("mul_scalar"));
}

#[test]
fn detach_cuts_the_graph() {
    // f = x · detach(x): only the first factor is differentiated, df/dx = detach(x) = 3.
    let x = Tensor::scalar(3.0).with_grad();
    let d = x.detach();
    assert!(d.is_leaf() && !d.requires_grad());
    let f = x.mul(&d).unwrap();
    assert_eq!(grad_of(&f.backward().unwrap(), &x), [3.0]);
}

#[test]
fn update_copies_on_write() {
    let mut w = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap().with_grad();
    let snapshot = w.clone();
    let id = w.id();
    w.update(|d| d.iter_mut().for_each(|v| *v -= 0.5)).unwrap();
    assert_eq!(w.to_vec(), [0.5, 1.5]);
    assert_eq!(
        snapshot.to_vec(),
        [1.0, 2.0],
        "a clone saw an in-place update"
    );
    assert_eq!(w.id(), id, "update changed the parameter's identity");
    let mut y = w.mul_scalar(2.0).unwrap();
    assert!(matches!(
        y.update(|_| {}),
        Err(Error::InvalidArgument { op: "update", .. })
    ));
}

#[test]
fn anomaly_mode_names_the_forward_op() {
    let x = Tensor::from_vec(vec![1.0, -1.0], [2]).unwrap();
    // Off: NaN flows silently.
    assert!(x.sqrt().unwrap().to_vec()[1].is_nan());
    let _on = AnomalyMode::enable();
    let _scope = Scope::enter("features");
    let _inner = Scope::enter("3");
    let err = x.mul_scalar(2.0).unwrap().sqrt().unwrap_err();
    match &err {
        Error::Anomaly {
            op,
            phase,
            index,
            path,
            ..
        } => {
            assert_eq!((*op, *phase, *index), ("sqrt", Phase::Forward, 1));
            assert_eq!(path.as_deref(), Some("features.3"));
        }
        other => panic!("expected an anomaly, got {other}"),
    }
    assert!(err.to_string().contains("sqrt (in features.3)"), "{err}");
}

#[test]
fn anomaly_mode_names_the_backward_op() {
    // sqrt(0) = 0 is finite, but its derivative 1 / (2·0) is inf.
    let x = Tensor::from_vec(vec![0.0, 4.0], [2]).unwrap().with_grad();
    let _on = AnomalyMode::enable();
    let loss = x.sqrt().unwrap().sum_all().unwrap();
    let err = loss.backward().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Anomaly {
                op: "sqrt",
                phase: Phase::Backward,
                index: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn errors_name_op_and_shapes() {
    let a = Tensor::zeros([2, 3]).unwrap();
    let b = Tensor::zeros([4, 5]).unwrap();
    assert_eq!(
        a.matmul(&b).unwrap_err().to_string(),
        "matmul: lhs [2, 3] and rhs [4, 5] do not agree on the inner dimension"
    );
    assert_eq!(
        a.add(&b).unwrap_err().to_string(),
        "add: lhs [2, 3] and rhs [4, 5] cannot be broadcast together"
    );
    let msg = a.reshape([4]).unwrap_err().to_string();
    assert!(
        msg.starts_with("reshape:") && msg.contains("[2, 3]") && msg.contains("[4]"),
        "{msg}"
    );
    let x = Tensor::zeros([1, 3, 8, 8]).unwrap();
    let w = Tensor::zeros([6, 2, 3, 3]).unwrap();
    let msg = x
        .conv2d(&w, None, Conv2dParams::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("conv2d:") && msg.contains("[1, 3, 8, 8]") && msg.contains("[6, 2, 3, 3]"),
        "{msg}"
    );
    let msg = a
        .max_pool2d(&MaxPool2dParams::square(2))
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("max_pool2d:") && msg.contains("[2, 3]"),
        "{msg}"
    );
    let msg = cross_entropy(&a, &[0, 7], 0.0).unwrap_err().to_string();
    assert!(
        msg.starts_with("cross_entropy:") && msg.contains("7"),
        "{msg}"
    );
    assert!(
        a.sum(&[2], false)
            .unwrap_err()
            .to_string()
            .contains("axis 2")
    );
}

#[test]
#[should_panic(expected = "mul: lhs [2] and rhs [3] cannot be broadcast together")]
fn operator_sugar_panics_with_the_error() {
    let _ = &Tensor::zeros([2]).unwrap() * &Tensor::zeros([3]).unwrap();
}

#[test]
fn operator_sugar_matches_methods() {
    let a = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap();
    let b = Tensor::from_vec(vec![4.0, 8.0], [2]).unwrap();
    assert_eq!((&(&(&a + &b) - &a) / &b).to_vec(), [1.0, 1.0]);
    assert_eq!((&(&a * 2.0) + 1.0).to_vec(), [3.0, 5.0]);
    assert_eq!((-&a).to_vec(), [-1.0, -2.0]);
}

#[test]
fn dot_export_shows_ops_shapes_and_gradients() {
    let x = Tensor::from_vec(vec![1.0, 2.0], [1, 2])
        .unwrap()
        .with_grad();
    let w = Tensor::from_vec(vec![3.0, 4.0], [2, 1])
        .unwrap()
        .with_grad();
    let _s = Scope::enter("fc");
    let y = x.matmul(&w).unwrap().relu().unwrap().sum_all().unwrap();
    let before = to_dot(&y, None);
    assert!(before.contains("matmul (fc)\\n[1, 1]"), "{before}");
    assert_eq!(before.matches("->").count(), 4, "{before}"); // x, w -> matmul -> relu -> sum
    let mut g = Gradients::new();
    y.backward_with(
        &mut g,
        BackwardOptions {
            retain_graph: true,
            keep_intermediate: false,
        },
    )
    .unwrap();
    // dy/dx = wᵀ = [3, 4] (relu passes: 11 > 0).
    let after = to_dot(&y, Some(&g));
    assert!(after.contains("grad [3.0000, 4.0000]"), "{after}");
}

/// A small LeNet-like step: conv, relu, pool, linear, cross-entropy.
fn step(seed: u64) -> (f32, Vec<f32>) {
    let x = Tensor::rand_normal([4, 1, 8, 8], 0.0, 1.0, seed).unwrap();
    let w = Tensor::rand_normal([3, 1, 3, 3], 0.0, 0.3, seed + 1)
        .unwrap()
        .with_grad();
    let fc = Tensor::rand_normal([27, 5], 0.0, 0.3, seed + 2)
        .unwrap()
        .with_grad();
    let h = x
        .conv2d(&w, None, Conv2dParams::default())
        .unwrap()
        .relu()
        .unwrap()
        .max_pool2d(&MaxPool2dParams::square(2))
        .unwrap()
        .flatten(1, 3)
        .unwrap();
    let loss = cross_entropy(&h.matmul(&fc).unwrap(), &[0, 1, 2, 3], 0.1).unwrap();
    let g = loss.backward().unwrap();
    let mut all = grad_of(&g, &w);
    all.extend(grad_of(&g, &fc));
    (loss.item().unwrap(), all)
}

#[test]
fn same_inputs_same_bits() {
    let (l1, g1) = step(42);
    let (l2, g2) = step(42);
    assert_eq!(l1.to_bits(), l2.to_bits());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&g1), bits(&g2));
    assert!(g1.iter().any(|&v| v != 0.0));
}

#[test]
fn dropping_a_deep_graph_does_not_overflow_the_stack() {
    // 100 000 chained ops: dropping the graph (or running backward) must not recurse.
    let x = Tensor::scalar(1.0).with_grad();
    let mut y = x.clone();
    for _ in 0..100_000 {
        y = y.mul_scalar(1.0).unwrap();
    }
    let g = y.backward().unwrap();
    assert_eq!(g.get(&x).unwrap().item().unwrap(), 1.0);
    let mut z = x.clone();
    for _ in 0..100_000 {
        z = z.add_scalar(0.0).unwrap();
    }
    drop(z);
}

#[test]
fn concat_joins_channels_and_splits_the_gradient() {
    // GoogLeNet's Inception join (formerly the zoo's own `cat_channels`): two [2, 1, 1, 2]
    // maps along axis 1; each image's channels are interleaved, and so is the gradient.
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 1, 1, 2])
        .unwrap()
        .with_grad();
    let b = Tensor::from_vec(vec![5.0, 6.0, 7.0, 8.0], [2, 1, 1, 2])
        .unwrap()
        .with_grad();
    let y = ventral_autograd::concat(&[&a, &b], 1).unwrap();
    assert_eq!(y.dims(), [2, 2, 1, 2]);
    assert_eq!(y.to_vec(), [1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0]);
    let w = Tensor::arange(0.0, 8.0, 1.0)
        .unwrap()
        .reshape([2, 2, 1, 2])
        .unwrap();
    let g = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&a).unwrap().to_vec(), [0.0, 1.0, 4.0, 5.0]);
    assert_eq!(g.get(&b).unwrap().to_vec(), [2.0, 3.0, 6.0, 7.0]);
}
