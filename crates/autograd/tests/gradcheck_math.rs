//! Gradient checks of the elementwise, reduction, softmax, loss and shape ops over
//! proptest-chosen shapes and values (see `common` for the generators and why the values
//! keep away from kinks). Each property fails if the op's backward disagrees with central
//! differences beyond `gradcheck`'s documented tolerances.

mod common;

use common::{broadcast_pair, check, config, distinct, small_shape, uniform};
use proptest::prelude::*;
use ventral_autograd::{
    MarginNormalization, Tensor, concat, cross_entropy, mse_loss, multi_margin_loss, nll_loss,
};

proptest! {
    #![proptest_config(config())]

    #[test]
    fn add_sub_mul_broadcast((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        let a = uniform(sa, -2.0, 2.0, seed);
        let b = uniform(sb, -2.0, 2.0, seed ^ 1);
        check(|t| t[0].add(&t[1]), &[a.clone(), b.clone()])?;
        check(|t| t[0].sub(&t[1]), &[a.clone(), b.clone()])?;
        check(|t| t[0].mul(&t[1]), &[a, b])?;
    }

    #[test]
    fn div_broadcast((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        // Denominators in [0.5, 2] keep 1/b smooth over the stencil.
        let a = uniform(sa, -2.0, 2.0, seed);
        let b = uniform(sb, 0.5, 2.0, seed ^ 1);
        check(|t| t[0].div(&t[1]), &[a, b])?;
    }

    #[test]
    fn scalar_ops(shape in small_shape(), seed in any::<u64>(), s in 0.5f32..2.0) {
        let x = uniform(shape, -2.0, 2.0, seed);
        check(|t| t[0].neg(), std::slice::from_ref(&x))?;
        check(|t| t[0].add_scalar(s), std::slice::from_ref(&x))?;
        check(|t| t[0].sub_scalar(s), std::slice::from_ref(&x))?;
        check(|t| t[0].rsub_scalar(s), std::slice::from_ref(&x))?;
        check(|t| t[0].mul_scalar(s), std::slice::from_ref(&x))?;
        check(|t| t[0].div_scalar(s), &[x])?;
    }

    #[test]
    fn smooth_unary(shape in small_shape(), seed in any::<u64>(), p in -2.0f32..3.0) {
        // Positive inputs for log, sqrt and real powers.
        let pos = uniform(shape.clone(), 0.5, 2.0, seed);
        let x = uniform(shape, -2.0, 2.0, seed ^ 2);
        check(|t| t[0].pow(p), std::slice::from_ref(&pos))?;
        check(|t| t[0].log(), std::slice::from_ref(&pos))?;
        check(|t| t[0].sqrt(), &[pos])?;
        check(|t| t[0].exp(), std::slice::from_ref(&x))?;
        check(|t| t[0].sigmoid(), std::slice::from_ref(&x))?;
        check(|t| t[0].tanh(), &[x])?;
    }

    #[test]
    fn kinked_unary(shape in small_shape(), seed in any::<u64>()) {
        // Grid values 0.05 + 0.1k: never within 0.05 of 0, -0.3 or 0.4 (the kinks).
        let x = distinct(shape, 0.1, seed);
        check(|t| t[0].abs(), std::slice::from_ref(&x))?;
        check(|t| t[0].clamp(-0.3, 0.4), std::slice::from_ref(&x))?;
        check(|t| t[0].relu(), std::slice::from_ref(&x))?;
        // A second grid of multiples of 0.1: sums 0.05 + 0.1k stay 0.05 from the kink.
        let shifted: Vec<f32> = distinct(x.dims().to_vec(), 0.1, seed ^ 9).to_vec().iter().map(|v| v - 0.05).collect();
        let b = Tensor::from_vec(shifted, x.dims().to_vec()).unwrap();
        check(|t| t[0].add_relu(&t[1]), &[x.clone(), b.clone()])?;
        // Broadcast operands take the two-op path.
        let row = Tensor::from_vec(vec![0.35], [1]).unwrap();
        check(|t| t[0].add_relu(&t[1]), &[b, row])?;
        check(|t| t[0].leaky_relu(0.1), std::slice::from_ref(&x))?;
        check(|t| t[0].elu(1.0), &[x])?;
    }

    #[test]
    fn prelu_shared_and_per_channel(n in 1usize..3, c in 1usize..4, hw in 1usize..4, seed in any::<u64>()) {
        let x = distinct([n, c, hw, hw], 0.1, seed);
        let shared = uniform([1], 0.05, 0.5, seed ^ 3);
        let per_channel = uniform([c], 0.05, 0.5, seed ^ 4);
        check(|t| t[0].prelu(&t[1]), &[x.clone(), shared])?;
        check(|t| t[0].prelu(&t[1]), &[x, per_channel])?;
    }

    #[test]
    fn maxout(n in 1usize..3, units in 1usize..4, pieces in 1usize..4, seed in any::<u64>()) {
        let z = distinct([n, units * pieces, 2], 0.1, seed);
        check(|t| t[0].maxout(pieces), &[z])?;
    }

    #[test]
    fn sum_and_mean(shape in small_shape(), mask in prop::collection::vec(any::<bool>(), 3), keepdim in any::<bool>(), seed in any::<u64>()) {
        let axes: Vec<usize> = (0..shape.len()).filter(|&i| mask[i]).collect();
        let x = uniform(shape, -2.0, 2.0, seed);
        check(|t| t[0].sum(&axes, keepdim), std::slice::from_ref(&x))?;
        check(|t| t[0].mean(&axes, keepdim), std::slice::from_ref(&x))?;
        check(|t| t[0].sum_all(), std::slice::from_ref(&x))?;
        check(|t| t[0].mean_all(), &[x])?;
    }

    #[test]
    fn max_and_min(shape in small_shape(), axis in 0usize..3, keepdim in any::<bool>(), seed in any::<u64>()) {
        // Distinct values: no ties, so the gradient's target is unambiguous.
        let axis = axis % shape.len();
        let x = distinct(shape, 0.1, seed);
        check(|t| t[0].max(&[axis], keepdim), std::slice::from_ref(&x))?;
        check(|t| t[0].min(&[axis], keepdim), std::slice::from_ref(&x))?;
        check(|t| t[0].max(&[], false), &[x])?;
    }

    #[test]
    fn softmax_any_axis(shape in small_shape(), axis in 0usize..3, seed in any::<u64>()) {
        let axis = axis % shape.len();
        let x = uniform(shape, -2.0, 2.0, seed);
        check(|t| t[0].softmax(axis), std::slice::from_ref(&x))?;
        check(|t| t[0].log_softmax(axis), &[x])?;
    }

    #[test]
    fn losses(n in 1usize..5, c in 2usize..5, seed in any::<u64>(), smoothing in prop_oneof![Just(0.0f32), Just(0.1f32)]) {
        let logits = uniform([n, c], -2.0, 2.0, seed);
        let targets: Vec<usize> = (0..n).map(|i| (seed as usize).wrapping_add(i * 7) % c).collect();
        check(|t| cross_entropy(&t[0], &targets, smoothing), std::slice::from_ref(&logits))?;
        check(|t| nll_loss(&t[0].log_softmax(1)?, &targets), std::slice::from_ref(&logits))?;
        let target = uniform([n, c], -1.0, 1.0, seed ^ 5);
        check(|t| mse_loss(&t[0], &target), &[logits])?;
        // Scores 0.13 apart: s_j - s_y + 1 stays >= 0.04 from the hinge's kink at 0.
        let scores = distinct([n, c], 0.13, seed ^ 6);
        check(|t| multi_margin_loss(&t[0], &targets, MarginNormalization::Sum), std::slice::from_ref(&scores))?;
        check(|t| multi_margin_loss(&t[0], &targets, MarginNormalization::ByClasses), &[scores])?;
    }

    #[test]
    fn views(a in 1usize..4, b in 1usize..4, c in 1usize..4, seed in any::<u64>()) {
        let x = uniform([a, b, c], -2.0, 2.0, seed);
        check(|t| t[0].reshape([c, a * b]), std::slice::from_ref(&x))?;
        check(|t| t[0].flatten(1, 2), std::slice::from_ref(&x))?;
        check(|t| t[0].permute(&[2, 0, 1]), std::slice::from_ref(&x))?;
        check(|t| t[0].transpose(0, 2)?.mul(&t[0].transpose(0, 2)?), std::slice::from_ref(&x))?;
        check(|t| t[0].unsqueeze(1)?.squeeze(1), std::slice::from_ref(&x))?;
        check(|t| t[0].broadcast_to([2, a, b, c]), std::slice::from_ref(&x))?;
        check(|t| t[0].narrow(1, b / 2, b - b / 2), std::slice::from_ref(&x))?;
        // A view of a view, made contiguous, then reshaped: strides compose correctly.
        check(|t| t[0].permute(&[1, 2, 0])?.narrow(0, 0, 1)?.contiguous()?.reshape([c * a]), &[x])?;
    }

    #[test]
    fn concat_split_select_gather(a in 1usize..4, b in 1usize..4, seed in any::<u64>()) {
        let x = uniform([a, b], -2.0, 2.0, seed);
        let y = uniform([a, 2], -2.0, 2.0, seed ^ 7);
        check(|t| concat(&[&t[0], &t[1]], 1), &[x.clone(), y])?;
        check(|t| {
            let parts = t[0].split(&[1, a - 1], 0)?;
            parts[1].sum_all()?.sub(&parts[0].sum_all()?)
        }, std::slice::from_ref(&x))?;
        // Repeated indices: their gradients add up.
        let idx: Vec<usize> = (0..a + 2).map(|i| (i * 5 + seed as usize) % a).collect();
        check(|t| t[0].index_select(0, &idx), std::slice::from_ref(&x))?;
        let labels: Vec<usize> = (0..a).map(|i| (i + seed as usize) % b).collect();
        check(|t| t[0].gather(1, &labels, [a, 1]), &[x])?;
    }
}
