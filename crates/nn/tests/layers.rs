//! Layer outputs against hand-computed values, BatchNorm's running statistics, train/eval
//! behaviour, descriptions and error messages.

use ventral_nn::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, BatchNormConfig, Dropout, ELU,
    LeakyReLU, Linear, LocalResponseNorm, Maxout, PReLU, ReLU, Sequential,
};
use ventral_nn::{Init, LrnParams, Mode, Module, Slot, Tensor, state_dict};

/// Asserts `|a − e| ≤ tol` elementwise.
#[track_caller]
fn close(actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= tol, "element {i}: {a} vs {e} ({actual:?})");
    }
}

/// Overwrites the parameter or buffer `name` with `values`.
fn set(module: &mut dyn Module, name: &str, values: &[f32]) {
    let mut found = false;
    module.visit("", &mut |n, slot| {
        if n == name
            && let Slot::Parameter(t) | Slot::Buffer(t) = slot
        {
            t.update(|d| d.copy_from_slice(values)).unwrap();
            found = true;
        }
    });
    assert!(found, "no slot {name}");
}

fn t(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape.to_vec()).unwrap()
}

#[test]
fn batch_norm_1d_trains_with_batch_statistics_and_updates_running_ones() {
    let mut bn = BatchNorm1d::new(2).unwrap();
    set(&mut bn, "weight", &[2.0, 0.5]);
    set(&mut bn, "bias", &[1.0, -1.0]);
    // [N = 4, C = 2]; channel 0 holds 1, 2, 3, 4 and channel 1 holds 0, 0, 2, 2.
    let x = t(&[1.0, 0.0, 2.0, 0.0, 3.0, 2.0, 4.0, 2.0], &[4, 2]);
    let y = bn.forward(&x).unwrap().to_vec();
    // Channel 0: mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25,
    // y = 2 (x − 2.5) / √(1.25 + 1e-5) + 1.
    // Channel 1: mean 1, biased variance 1, y = 0.5 (x − 1) / √(1 + 1e-5) − 1.
    let s0 = (1.25f32 + 1e-5).sqrt();
    let s1 = (1.0f32 + 1e-5).sqrt();
    let expected: Vec<f32> = [1.0, 2.0, 3.0, 4.0]
        .iter()
        .zip([0.0, 0.0, 2.0, 2.0])
        .flat_map(|(a, b)| [2.0 * (a - 2.5) / s0 + 1.0, 0.5 * (b - 1.0) / s1 - 1.0])
        .collect();
    close(&y, &expected, 1e-5);
    // running ← 0.9 running + 0.1 batch, with the unbiased variance (n / (n − 1) = 4/3):
    // mean = 0.1 · [2.5, 1] = [0.25, 0.1];
    // var = 0.9 · 1 + 0.1 · [1.25 · 4/3, 1 · 4/3] = [1.0666667, 1.0333333].
    close(&bn.running_mean().unwrap().to_vec(), &[0.25, 0.1], 1e-6);
    close(
        &bn.running_var().unwrap().to_vec(),
        &[1.0666667, 1.0333333],
        1e-6,
    );
    assert_eq!(bn.num_batches_tracked(), 1);
    // A second batch: mean = 0.9 · 0.25 + 0.1 · 2.5 = 0.475.
    bn.forward(&x).unwrap();
    close(&bn.running_mean().unwrap().to_vec()[..1], &[0.475], 1e-6);
    assert_eq!(bn.num_batches_tracked(), 2);
}

#[test]
fn batch_norm_eval_uses_running_statistics_and_changes_nothing() {
    let mut bn = BatchNorm1d::new(2).unwrap();
    set(&mut bn, "weight", &[2.0, 0.5]);
    set(&mut bn, "bias", &[1.0, -1.0]);
    set(&mut bn, "running_mean", &[1.0, -1.0]);
    set(&mut bn, "running_var", &[4.0, 0.25]);
    bn.set_mode(Mode::Eval);
    let x = t(&[3.0, 0.0, 5.0, 1.0], &[2, 2]);
    let y = bn.forward(&x).unwrap().to_vec();
    // y = w (x − μ) / √(σ² + ε) + b: 2 · 2 / √4.00001 + 1 ≈ 3, 0.5 · 1 / √0.25001 − 1 ≈ 0,
    // 2 · 4 / 2 + 1 = 5, 0.5 · 2 / 0.5 − 1 = 1 (to ~1e-5).
    close(&y, &[3.0, 0.0, 5.0, 1.0], 1e-4);
    assert_eq!(bn.num_batches_tracked(), 0);
    assert_eq!(bn.running_mean().unwrap().to_vec(), [1.0, -1.0]);
    // Back in training mode the batch statistics are used instead: a different result.
    bn.set_mode(Mode::Train);
    let y_train = bn.forward(&x).unwrap().to_vec();
    assert!((y_train[0] - y[0]).abs() > 0.1, "{y_train:?}");
}

#[test]
fn batch_norm_momentum_none_is_a_cumulative_average() {
    let config = BatchNormConfig {
        momentum: None,
        ..Default::default()
    };
    let bn = BatchNorm1d::with_config(1, config).unwrap();
    // Batch means 2.5 and 12.5: momentum 1/1 then 1/2, so the running mean is their
    // average, 7.5; unbiased variances are both 5/3 (a shift does not change it), so the
    // running variance is (1 − 1) · 1 + 5/3 then ½ (5/3 + 5/3) = 5/3.
    bn.forward(&t(&[1.0, 2.0, 3.0, 4.0], &[4, 1])).unwrap();
    bn.forward(&t(&[11.0, 12.0, 13.0, 14.0], &[4, 1])).unwrap();
    close(&bn.running_mean().unwrap().to_vec(), &[7.5], 1e-5);
    close(&bn.running_var().unwrap().to_vec(), &[5.0 / 3.0], 1e-5);
}

#[test]
fn batch_norm_without_running_stats_uses_batch_statistics_in_eval() {
    let config = BatchNormConfig {
        track_running_stats: false,
        affine: false,
        ..Default::default()
    };
    let mut bn = BatchNorm1d::with_config(1, config).unwrap();
    bn.set_mode(Mode::Eval);
    // Mean 2, biased variance 1: y = ±1 / √(1 + 1e-5).
    let y = bn.forward(&t(&[1.0, 3.0], &[2, 1])).unwrap().to_vec();
    close(&y, &[-1.0, 1.0], 1e-5);
    assert!(state_dict(&mut bn).is_empty());
}

#[test]
fn batch_norm_2d_normalises_over_batch_and_space() {
    let bn = BatchNorm2d::new(1).unwrap();
    // [N = 2, C = 1, H = 1, W = 2]: one channel holding 1, 2, 3, 4 (mean 2.5, var 1.25).
    let y = bn
        .forward(&t(&[1.0, 2.0, 3.0, 4.0], &[2, 1, 1, 2]))
        .unwrap();
    let s = (1.25f32 + 1e-5).sqrt();
    close(&y.to_vec(), &[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], 1e-5);
    // [N, C, L] for the 1-d variant: the same statistics over N and L.
    let bn1 = BatchNorm1d::new(1).unwrap();
    let y1 = bn1.forward(&t(&[1.0, 2.0, 3.0, 4.0], &[2, 1, 2])).unwrap();
    assert_eq!(y1.to_vec(), y.to_vec());
}

#[test]
fn batch_norm_failure_changes_no_state_and_names_the_layer() {
    let bn = BatchNorm2d::new(3).unwrap();
    let err = bn
        .forward(&Tensor::zeros([8, 2, 4, 4]).unwrap())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True): \
         expected input [N, 3, H, W], got [8, 2, 4, 4]"
    );
    // One value per channel: no unbiased variance, so training fails, counting nothing.
    let err = bn
        .forward(&Tensor::zeros([1, 3, 1, 1]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(
            "expected more than 1 value per channel when training, got input [1, 3, 1, 1]"
        ),
        "{err}"
    );
    assert_eq!(bn.num_batches_tracked(), 0);
    let model = Sequential::new()
        .push(ReLU)
        .push(BatchNorm1d::new(4).unwrap());
    let err = model.forward(&Tensor::zeros([2, 3]).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("1 BatchNorm1d(4, eps=1e-05, momentum=0.1")
            && err
                .to_string()
                .ends_with("expected input [N, 4] or [N, 4, L], got [2, 3]"),
        "{err}"
    );
}

#[test]
fn batch_norm_state_dict_names_match_pytorch() {
    let mut model = Sequential::new()
        .push(Linear::new(2, 3, true, &mut Init::new(0)).unwrap())
        .push(BatchNorm1d::new(3).unwrap());
    let keys: Vec<String> = state_dict(&mut model).keys().map(String::from).collect();
    assert_eq!(
        keys,
        [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked"
        ]
    );
}

#[test]
fn dropout_masks_are_inverted_deterministic_and_fresh_per_call() {
    let mut drop = Dropout::new(0.25, 42).unwrap();
    let x = Tensor::ones([10_000]).unwrap();
    let first = drop.forward(&x).unwrap().to_vec();
    // Kept elements are scaled by 1 / (1 − 0.25) = 4/3; about a quarter are dropped
    // (binomial std √(10⁴ · 0.25 · 0.75) ≈ 43, so ±300 is a > 6σ bound).
    assert!(first.iter().all(|&v| v == 0.0 || v == 4.0 / 3.0));
    let dropped = first.iter().filter(|&&v| v == 0.0).count();
    assert!((2200..=2800).contains(&dropped), "{dropped} dropped");
    let second = drop.forward(&x).unwrap().to_vec();
    assert_ne!(first, second);
    assert_eq!(drop.calls(), 2);
    // The same seed and call number give the same mask; another seed another one.
    drop.set_calls(0);
    assert_eq!(drop.forward(&x).unwrap().to_vec(), first);
    let other = Dropout::new(0.25, 43).unwrap();
    assert_ne!(other.forward(&x).unwrap().to_vec(), first);
    // p = 0 keeps everything, p = 1 drops everything; eval mode is the identity and draws
    // no mask.
    assert_eq!(
        Dropout::new(0.0, 1).unwrap().forward(&x).unwrap().to_vec(),
        x.to_vec()
    );
    assert!(
        Dropout::new(1.0, 1)
            .unwrap()
            .forward(&x)
            .unwrap()
            .to_vec()
            .iter()
            .all(|&v| v == 0.0)
    );
    drop.set_mode(Mode::Eval);
    assert_eq!(drop.forward(&x).unwrap().to_vec(), x.to_vec());
    assert_eq!(drop.calls(), 1);
    let err = Dropout::new(1.5, 0).unwrap_err().to_string();
    assert_eq!(err, "Dropout: probability must be in [0, 1], got 1.5");
    assert_eq!(drop.describe(), "Dropout(p=0.25)");
}

#[test]
fn set_mode_reaches_every_layer_of_a_sequential() {
    let mut model = Sequential::new()
        .push(Dropout::new(0.5, 3).unwrap())
        .push(BatchNorm1d::new(1).unwrap());
    let x = t(&[1.0, 2.0, 3.0, 4.0], &[4, 1]);
    model.set_mode(Mode::Eval);
    // Dropout is the identity and BatchNorm uses its initial running statistics (0, 1):
    // y = x / √(1 + 1e-5).
    let y = model.forward(&x).unwrap().to_vec();
    close(&y, &[1.0, 2.0, 3.0, 4.0], 1e-4);
}

#[test]
fn avg_pool_averages_windows() {
    let x = Tensor::arange(0.0, 16.0, 1.0)
        .unwrap()
        .reshape([1, 1, 4, 4])
        .unwrap();
    // 2x2 windows of the 4x4 image 0..16: (0+1+4+5)/4 = 2.5, (2+3+6+7)/4 = 4.5, …
    let y = AvgPool2d::new(2).forward(&x).unwrap();
    assert_eq!(y.dims(), [1, 1, 2, 2]);
    assert_eq!(y.to_vec(), [2.5, 4.5, 10.5, 12.5]);
    // 3x3 windows, stride 1 on the top-left 3x3 block: mean of 0,1,2,4,5,6,8,9,10 = 5.
    let p = ventral_nn::AvgPool2dParams::square(3).with_stride((1, 1));
    let y = AvgPool2d::with_params(p).forward(&x).unwrap();
    assert_eq!(y.to_vec(), [5.0, 6.0, 9.0, 10.0]);
    assert_eq!(
        AvgPool2d::new(2).describe(),
        "AvgPool2d(kernel_size=2, stride=2, padding=0)"
    );
    let err = AvgPool2d::new(2)
        .forward(&Tensor::zeros([4, 4]).unwrap())
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected input [N, C, H, W], got [4, 4]")
    );
}

#[test]
fn adaptive_avg_pool_uses_pytorch_windows() {
    let x = Tensor::arange(0.0, 9.0, 1.0)
        .unwrap()
        .reshape([1, 1, 3, 3])
        .unwrap();
    // H = 3 → 2: window i covers [⌊3i/2⌋, ⌈3(i+1)/2⌉) = rows 0..2 and 1..3 (likewise
    // columns), overlapping in the middle. (0,0): 0,1,3,4 → 2; (0,1): 1,2,4,5 → 3;
    // (1,0): 3,4,6,7 → 5; (1,1): 4,5,7,8 → 6.
    let y = AdaptiveAvgPool2d::new((2, 2)).forward(&x).unwrap();
    assert_eq!(y.to_vec(), [2.0, 3.0, 5.0, 6.0]);
    assert_eq!(
        AdaptiveAvgPool2d::new((6, 6)).describe(),
        "AdaptiveAvgPool2d(output_size=(6, 6))"
    );
}

#[test]
fn local_response_norm_matches_its_formula() {
    // Size 2 over C = 2 channels: W(c) = [c − 1, c] ∩ [0, 2), so W(0) = {0}, W(1) = {0, 1}.
    // With α = 1, β = 1, k = 1 and a pixel holding (1, 2):
    // b₀ = 1 / (1 + ½ · 1²) = 2/3; b₁ = 2 / (1 + ½ (1² + 2²)) = 2 / 3.5 = 4/7.
    let lrn = LocalResponseNorm::new(LrnParams::new(2).with_alpha(1.0).with_beta(1.0));
    let y = lrn.forward(&t(&[1.0, 2.0], &[1, 2, 1, 1])).unwrap();
    close(&y.to_vec(), &[2.0 / 3.0, 4.0 / 7.0], 1e-6);
    // AlexNet's: k = 2, β = 0.75 on a single channel of value 10, size 5:
    // 10 / (2 + 1e-4 / 5 · 100)^0.75 = 10 / 2.002^0.75.
    let alex = LocalResponseNorm::new(LrnParams::new(5).with_k(2.0));
    let y = alex.forward(&t(&[10.0], &[1, 1, 1, 1])).unwrap();
    close(&y.to_vec(), &[10.0 / 2.002f32.powf(0.75)], 1e-5);
    assert_eq!(
        alex.describe(),
        "LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=2.0)"
    );
}

#[test]
fn activations_match_their_formulas() {
    let x = t(&[-2.0, -0.5, 0.0, 3.0], &[4]);
    // LeakyReLU(0.1): 0.1 x for x ≤ 0.
    close(
        &LeakyReLU::new(0.1).forward(&x).unwrap().to_vec(),
        &[-0.2, -0.05, 0.0, 3.0],
        1e-7,
    );
    assert_eq!(LeakyReLU::default().negative_slope, 0.01);
    // ELU(α): α (eˣ − 1) for x ≤ 0: e⁻² − 1 = −0.8646647, e^−0.5 − 1 = −0.3934693.
    close(
        &ELU::default().forward(&x).unwrap().to_vec(),
        &[-0.8646647, -0.3934693, 0.0, 3.0],
        1e-6,
    );
    close(
        &ELU::new(2.0).forward(&x).unwrap().to_vec()[..1],
        &[-1.7293294],
        1e-6,
    );
    assert_eq!(
        LeakyReLU::default().describe(),
        "LeakyReLU(negative_slope=0.01)"
    );
    assert_eq!(ELU::default().describe(), "ELU(alpha=1.0)");
}

#[test]
fn prelu_learns_one_slope_or_one_per_channel() {
    // Shared slope 0.25 (PyTorch's initial value): −4 → −1.
    let shared = PReLU::new(1).unwrap();
    assert_eq!(shared.weight.to_vec(), [0.25]);
    let x = t(&[-4.0, 4.0, -2.0, 2.0], &[1, 2, 2]);
    close(
        &shared.forward(&x).unwrap().to_vec(),
        &[-1.0, 4.0, -0.5, 2.0],
        1e-7,
    );
    // Per channel: channel 0 slope 0.25, channel 1 slope 0.5: −2 · 0.5 = −1.
    let mut per_channel = PReLU::new(2).unwrap();
    set(&mut per_channel, "weight", &[0.25, 0.5]);
    close(
        &per_channel.forward(&x).unwrap().to_vec(),
        &[-1.0, 4.0, -1.0, 2.0],
        1e-7,
    );
    let err = per_channel
        .forward(&Tensor::zeros([1, 3, 2]).unwrap())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "PReLU(num_parameters=2): expected input [N, 2, *], got [1, 3, 2]"
    );
}

#[test]
fn maxout_keeps_the_largest_piece() {
    let mut layer = Maxout::new(2, 1, 2, &mut Init::new(0)).unwrap();
    let keys: Vec<String> = state_dict(&mut layer).keys().map(String::from).collect();
    assert_eq!(keys, ["weight", "bias"]);
    // Pieces z₀ = x₀ and z₁ = x₁ + 0.5: max(3, 1.5) = 3 and max(1, 3.5) = 3.5.
    set(&mut layer, "weight", &[1.0, 0.0, 0.0, 1.0]);
    set(&mut layer, "bias", &[0.0, 0.5]);
    let y = layer.forward(&t(&[3.0, 1.0, 1.0, 3.0], &[2, 2])).unwrap();
    assert_eq!(y.dims(), [2, 1]);
    close(&y.to_vec(), &[3.0, 3.5], 1e-7);
    assert_eq!(layer.describe(), "Maxout(2→1, pieces=2)");
    let err = layer.forward(&Tensor::zeros([2, 3]).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected input [N, 2], got [2, 3]")
    );
    let err = Maxout::new(2, 1, 0, &mut Init::new(0))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "Maxout: units and pieces must be positive, got 1 units of 0"
    );
}

#[test]
fn sequential_runs_children_through_its_child_forward() {
    use std::sync::Mutex;
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    fn recording(child: &dyn Module, name: &str, x: &Tensor) -> ventral_nn::Result<Tensor> {
        SEEN.lock().unwrap().push(name.to_string());
        child.forward(x)?.mul_scalar(2.0).map_err(Into::into)
    }
    let model = Sequential::new()
        .push(ReLU)
        .push(ReLU)
        .forwarding_through(recording);
    let y = model
        .forward(&Tensor::from_vec(vec![-1.0, 3.0], [2]).unwrap())
        .unwrap();
    assert_eq!(*SEEN.lock().unwrap(), ["0", "1"]);
    assert_eq!(y.to_vec(), [0.0, 12.0]); // relu, x2, relu, x2
}
