//! Gradient checks of the layer ops (matmul, conv2d, pooling, normalisation, dropout) over
//! proptest-chosen shapes and hyper-parameters.

mod common;

use common::{check, config, distinct, uniform};
use proptest::prelude::*;
use ventral_autograd::{
    AvgPool2dParams, BatchNormOptions, Conv2dParams, LrnParams, MaxPool2dParams, Mode, Tensor,
};

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matmul_2d(m in 1usize..5, k in 1usize..5, n in 1usize..5, seed in any::<u64>()) {
        let a = uniform([m, k], -2.0, 2.0, seed);
        let b = uniform([k, n], -2.0, 2.0, seed ^ 1);
        check(|t| t[0].matmul(&t[1]), &[a, b])?;
    }

    #[test]
    fn matmul_transposed_views(m in 1usize..5, k in 1usize..5, n in 1usize..5, seed in any::<u64>()) {
        // Both operands are strided views (transposes of leaves): read through strides.
        let at = uniform([k, m], -2.0, 2.0, seed);
        let bt = uniform([n, k], -2.0, 2.0, seed ^ 1);
        check(|t| t[0].t()?.matmul(&t[1].t()?), &[at, bt.clone()])?;
        // A row broadcast to a matrix (row stride 0) times a transposed view.
        let row = uniform([1, k], -2.0, 2.0, seed ^ 2);
        check(|t| t[0].broadcast_to([m, k])?.matmul(&t[1].t()?), &[row, bt])?;
    }

    #[test]
    fn matmul_batched_and_shared(batch in 1usize..4, m in 1usize..4, k in 1usize..4, n in 1usize..4, seed in any::<u64>()) {
        let a = uniform([batch, m, k], -2.0, 2.0, seed);
        let b = uniform([batch, k, n], -2.0, 2.0, seed ^ 1);
        let shared = uniform([k, n], -2.0, 2.0, seed ^ 2);
        check(|t| t[0].matmul(&t[1]), &[a.clone(), b])?;
        // A 2-D rhs shared by every product (batch stride 0): its gradient sums over items.
        check(|t| t[0].matmul(&t[1]), &[a, shared.clone()])?;
        let lhs = uniform([m, k], -2.0, 2.0, seed ^ 3);
        let rhs = uniform([batch, k, n], -2.0, 2.0, seed ^ 4);
        check(|t| t[0].matmul(&t[1]), &[lhs, rhs])?;
    }

    #[test]
    fn matmul_broadcast_batch(p in 1usize..3, q in 1usize..3, m in 1usize..3, k in 1usize..3, n in 1usize..3, seed in any::<u64>()) {
        // [p, 1, m, k] x [1, q, k, n] -> [p, q, m, n]: both operands are broadcast.
        let a = uniform([p, 1, m, k], -2.0, 2.0, seed);
        let b = uniform([1, q, k, n], -2.0, 2.0, seed ^ 1);
        check(|t| t[0].matmul(&t[1]), &[a, b])?;
    }

    #[test]
    fn conv2d(
        n in 1usize..3,
        groups in 1usize..3,
        cin in 1usize..3,
        cout in 1usize..3,
        kernel in 1usize..4,
        stride in 1usize..3,
        padding in 0usize..2,
        dilation in 1usize..3,
        extra in 0usize..3,
        bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (c, o) = (cin * groups, cout * groups);
        let span = dilation * (kernel - 1) + 1;
        let hw = span.saturating_sub(2 * padding).max(1) + extra;
        let params = Conv2dParams { stride: (stride, stride), padding: (padding, padding), dilation: (dilation, dilation), groups };
        let x = uniform([n, c, hw, hw + 1], -1.0, 1.0, seed);
        let w = uniform([o, cin, kernel, kernel], -1.0, 1.0, seed ^ 1);
        if bias {
            let b = uniform([o], -1.0, 1.0, seed ^ 2);
            check(|t| t[0].conv2d(&t[1], Some(&t[2]), params), &[x, w, b])?;
        } else {
            check(|t| t[0].conv2d(&t[1], None, params), &[x, w])?;
        }
    }

    #[test]
    fn max_pool2d(n in 1usize..3, c in 1usize..3, hw in 2usize..7, k in 1usize..4, stride in 1usize..3, pad in 0usize..2, ceil in any::<bool>(), seed in any::<u64>()) {
        let k = k.min(hw);
        let pad = pad.min(k / 2);
        let params = MaxPool2dParams::new((k, k)).with_stride((stride, stride)).with_padding((pad, pad)).with_ceil_mode(ceil);
        // Distinct values: every window has a unique max.
        let x = distinct([n, c, hw, hw], 0.1, seed);
        check(|t| t[0].max_pool2d(&params), &[x])?;
    }

    #[test]
    fn avg_pool2d(n in 1usize..3, c in 1usize..3, hw in 2usize..7, k in 1usize..4, stride in 1usize..3, pad in 0usize..2, include_pad in any::<bool>(), seed in any::<u64>()) {
        let k = k.min(hw);
        let pad = pad.min(k / 2);
        let params = AvgPool2dParams::new((k, k)).with_stride((stride, stride)).with_padding((pad, pad)).with_count_include_pad(include_pad);
        let x = uniform([n, c, hw, hw], -2.0, 2.0, seed);
        check(|t| t[0].avg_pool2d(&params), &[x])?;
    }

    #[test]
    fn adaptive_avg_pool2d(h in 1usize..7, w in 1usize..7, oh in 1usize..4, ow in 1usize..4, seed in any::<u64>()) {
        let x = uniform([2, 2, h, w], -2.0, 2.0, seed);
        check(|t| t[0].adaptive_avg_pool2d((oh, ow)), &[x])?;
    }

    #[test]
    fn batch_norm_train_and_eval(n in 2usize..4, c in 1usize..4, hw in 1usize..3, affine in any::<bool>(), seed in any::<u64>()) {
        // Values at least 0.3 apart: no channel's variance is tiny, where the normalisation
        // is so curved that a finite difference over 2h = 0.016 would not be a derivative.
        let x = distinct([n, c, hw, hw], 0.3, seed);
        let w = uniform([c], 0.5, 1.5, seed ^ 1);
        let b = uniform([c], -1.0, 1.0, seed ^ 2);
        let opts = BatchNormOptions::default();
        if affine {
            check(|t| t[0].batch_norm(Some(&t[1]), Some(&t[2]), None, Mode::Train, opts), &[x.clone(), w.clone(), b.clone()])?;
        } else {
            check(|t| t[0].batch_norm(None, None, None, Mode::Train, opts), std::slice::from_ref(&x))?;
        }
        // Eval with running statistics: a fixed affine map of x.
        let mean = uniform([c], -0.5, 0.5, seed ^ 3);
        let var = uniform([c], 0.5, 2.0, seed ^ 4);
        check(|t| {
            let (mut m, mut v) = (mean.clone(), var.clone());
            let running = ventral_autograd::RunningStats { mean: &mut m, var: &mut v };
            t[0].batch_norm(Some(&t[1]), Some(&t[2]), Some(running), Mode::Eval, opts)
        }, &[x, w, b])?;
    }

    #[test]
    fn local_response_norm(n in 1usize..3, c in 1usize..6, size in 1usize..5, seed in any::<u64>()) {
        let x = uniform([n, c, 2, 2], -2.0, 2.0, seed);
        let params = LrnParams::new(size).with_alpha(0.5).with_beta(0.75).with_k(1.0);
        check(|t| t[0].local_response_norm(&params), &[x])?;
    }

    #[test]
    fn dropout_train(shape in prop::collection::vec(1usize..5, 1..3), p in 0.0f32..0.9, seed in any::<u64>()) {
        // A fixed seed fixes the mask, so the op is linear in x and must check exactly.
        let x = uniform(shape, -2.0, 2.0, seed);
        check(|t| t[0].dropout(p, seed, Mode::Train), &[x])?;
    }
}

#[test]
fn batch_norm_updates_running_stats() {
    // One channel holding [1, 3]: batch mean 2, unbiased variance 2. With momentum 0.1 the
    // running mean goes 0 -> 0.1·2 = 0.2, the running variance 1 -> 0.9·1 + 0.1·2 = 1.1.
    let x = Tensor::from_vec(vec![1.0, 3.0], [2, 1]).unwrap();
    let (mut mean, mut var) = (Tensor::zeros([1]).unwrap(), Tensor::ones([1]).unwrap());
    let running = ventral_autograd::RunningStats {
        mean: &mut mean,
        var: &mut var,
    };
    x.batch_norm(
        None,
        None,
        Some(running),
        Mode::Train,
        BatchNormOptions::default(),
    )
    .unwrap();
    assert!((mean.item().unwrap() - 0.2).abs() < 1e-7);
    assert!((var.item().unwrap() - 1.1).abs() < 1e-6);
}
