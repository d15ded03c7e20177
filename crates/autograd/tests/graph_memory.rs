//! The graph is freed after backward: a 10 000-step training loop does not grow the number of
//! live graph nodes. (Alone in its own test binary, so no other test's nodes are counted.)

use ventral_autograd::{Gradients, Tensor, cross_entropy, live_nodes, no_grad};

/// Forward pass of a two-layer MLP on a fixed batch, returning only the loss.
fn loss(x: &Tensor, w1: &Tensor, w2: &Tensor) -> Tensor {
    let h = x.matmul(w1).unwrap().tanh().unwrap();
    cross_entropy(&h.matmul(w2).unwrap(), &[0, 1, 2, 0], 0.0).unwrap()
}

#[test]
fn training_loop_does_not_grow_the_graph() {
    let x = Tensor::rand_normal([4, 3], 0.0, 1.0, 1).unwrap();
    let mut w1 = Tensor::rand_normal([3, 8], 0.0, 0.5, 2)
        .unwrap()
        .with_grad();
    let mut w2 = Tensor::rand_normal([8, 3], 0.0, 0.5, 3)
        .unwrap()
        .with_grad();
    let mut grads = Gradients::new();
    let base = live_nodes();
    let mut first_loss = None;
    let mut last_loss = 0.0;
    for step in 0..10_000 {
        let l = loss(&x, &w1, &w2);
        // matmul, tanh, matmul, log_softmax, gather, mean, neg: 7 nodes while alive.
        assert_eq!(live_nodes() - base, 7, "step {step}");
        grads.clear();
        l.backward_into(&mut grads).unwrap();
        // Only the root's (emptied) node survives backward while the loss is alive.
        assert_eq!(live_nodes() - base, 1, "step {step}");
        last_loss = l.item().unwrap();
        first_loss.get_or_insert(last_loss);
        drop(l);
        assert_eq!(live_nodes(), base, "step {step}");
        no_grad(|| {
            for w in [&mut w1, &mut w2] {
                let g = grads.get(w).unwrap().to_vec();
                w.update(|d| d.iter_mut().zip(&g).for_each(|(p, g)| *p -= 0.1 * g))
                    .unwrap();
            }
        });
    }
    // And it learned: the loss of a memorisable batch went down.
    assert!(
        last_loss < first_loss.unwrap() * 0.5,
        "{first_loss:?} -> {last_loss}"
    );
}
