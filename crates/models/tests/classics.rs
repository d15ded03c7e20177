//! The classics and their learning rules: the perceptron on separable data and on XOR, Adaline
//! against least squares, Madaline on XOR, one-vs-rest on the digits and the Mark I retina.

use std::path::Path;

use ventral_models::classic::{Adaline, Madaline, OneVsRest, Perceptron, mark_i_retina};
use ventral_nn::data::{Split, load};

const XOR_X: [f32; 8] = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
const XOR_Y: [u8; 4] = [0, 1, 1, 0];
/// XOR in the ±1 coding Widrow used.
const XOR_PM_X: [f32; 8] = [-1.0, -1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0];
const XOR_PM_Y: [f32; 4] = [-1.0, 1.0, 1.0, -1.0];

/// `n` points in [-1, 1]² labelled by the line `x + 2y > 0.3`, dropping those within 0.05 of
/// it (so the margin is positive), from a fixed linear congruential sequence.
fn separable(n: usize) -> (Vec<f32>, Vec<u8>) {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    };
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    while ys.len() < n {
        let (a, b) = (next(), next());
        let s = a + 2.0 * b - 0.3;
        if s.abs() / 5f32.sqrt() > 0.05 {
            xs.extend([a, b]);
            ys.push(u8::from(s > 0.0));
        }
    }
    (xs, ys)
}

#[test]
fn perceptron_converges_on_separable_data() {
    let (xs, ys) = separable(200);
    let mut p = Perceptron::new(2, 0.1).unwrap();
    let report = p.fit(&xs, &ys, 1000).unwrap();
    assert!(report.converged, "{report:?}");
    // Converged means an epoch without a mistake: every point is now on its side.
    for (x, &y) in xs.chunks(2).zip(&ys) {
        assert_eq!(p.predict(x), y);
    }
}

#[test]
fn perceptron_cannot_fit_xor() {
    // No (w, b) fits XOR: outputs 0, 1, 1, 0 need b ≤ 0, w₁ + b > 0, w₂ + b > 0 and
    // w₁ + w₂ + b ≤ 0; adding the middle two gives w₁ + w₂ + 2b > 0, so w₁ + w₂ + b > −b ≥ 0,
    // a contradiction. So training can never finish an epoch without a mistake. With α = 1
    // and 0/1 inputs the weights stay integers and bounded (perceptron cycling theorem), so
    // the run must revisit a state: we show it does, i.e. it loops forever.
    let mut p = Perceptron::new(2, 1.0).unwrap();
    let mut seen = Vec::new();
    for epoch in 0..1000 {
        let errors = p.epoch(&XOR_X, &XOR_Y).unwrap();
        assert!(errors > 0, "an error-free epoch on XOR at {epoch}");
        let state = (p.weights.clone(), p.bias);
        if seen.contains(&state) {
            return; // a cycle: the same updates repeat forever, each epoch with mistakes
        }
        seen.push(state);
    }
    panic!("no cycle found within 1000 epochs");
}

#[test]
fn adaline_finds_the_least_squares_solution() {
    // Six points, targets with noise: no exact fit, so LMS must find the minimum of the
    // squared error, the solution of the normal equations (XᵀX) w = Xᵀd with X = [x, 1].
    let xs = [
        0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 2.0,
    ];
    let d = [0.1f32, 1.2, -0.9, 0.4, 1.3, -1.6];
    let mut a = [[0f64; 4]; 3]; // augmented [XᵀX | Xᵀd]
    for (x, &t) in xs.chunks(2).zip(&d) {
        let row = [f64::from(x[0]), f64::from(x[1]), 1.0];
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] += row[i] * row[j];
            }
            a[i][3] += row[i] * f64::from(t);
        }
    }
    // Gauss-Jordan elimination (XᵀX is positive definite, so no pivoting is needed).
    for c in 0..3 {
        let pivot = a[c];
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c] / pivot[c];
                for (v, p) in row.iter_mut().zip(pivot) {
                    *v -= f * p;
                }
            }
        }
    }
    let ls: Vec<f64> = (0..3).map(|i| a[i][3] / a[i][i]).collect();
    // Online LMS with a step decaying as 1/t (Robbins–Monro) converges to that minimum.
    let mut ada = Adaline::new(2, 0.05).unwrap();
    for epoch in 0..4000 {
        ada.learning_rate = 0.05 / (1.0 + epoch as f32 / 100.0);
        ada.epoch(&xs, &d).unwrap();
    }
    let got = [ada.weights[0], ada.weights[1], ada.bias];
    for (g, l) in got.iter().zip(&ls) {
        assert!(
            (f64::from(*g) - l).abs() < 0.01,
            "LMS {got:?} vs least squares {ls:?}"
        );
    }
}

#[test]
fn one_adaline_cannot_fit_xor_but_madaline_does() {
    // XOR's least-squares linear fit in ±1 coding is w = 0, b = 0: one Adaline is no better
    // than a constant, and gets at least two of the four wrong.
    let mut ada = Adaline::new(2, 0.05).unwrap();
    for _ in 0..500 {
        ada.epoch(&XOR_PM_X, &XOR_PM_Y).unwrap();
    }
    let wrong = XOR_PM_X
        .chunks(2)
        .zip(&XOR_PM_Y)
        .filter(|&(x, &t)| ada.predict(x) != t)
        .count();
    assert!(wrong >= 1, "one Adaline fitted XOR?");

    for seed in 0..5 {
        let mut m = Madaline::new(2, 3, 1.0, seed).unwrap();
        let report = m.fit(&XOR_PM_X, &XOR_PM_Y, 200).unwrap();
        assert!(report.converged, "seed {seed}: {report:?}");
        for (x, &t) in XOR_PM_X.chunks(2).zip(&XOR_PM_Y) {
            assert_eq!(m.predict(x), t, "seed {seed}");
        }
    }
}

fn repo_data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

#[test]
fn one_vs_rest_classics_learn_the_digits() {
    let data = load("digits", &repo_data("digits"), Split::Train).unwrap();
    let x = data.to_f32();
    let (x, y) = (x.as_slice(), data.labels());
    let d = x.len() / y.len();
    let split = 1500;
    let (train_x, test_x) = x.split_at(split * d);
    let (train_y, test_y) = y.split_at(split);

    let mut perceptrons = OneVsRest::new(10, |_| Perceptron::new(d, 0.1)).unwrap();
    for epoch in 0..10 {
        perceptrons.epoch(train_x, train_y, Some(epoch)).unwrap();
    }
    let acc = perceptrons.accuracy(test_x, test_y).unwrap();
    assert!(acc > 0.85, "perceptron one-vs-rest: {acc}");

    let mut adalines = OneVsRest::new(10, |_| Adaline::new(d, 0.002)).unwrap();
    for epoch in 0..10 {
        adalines.epoch(train_x, train_y, Some(epoch)).unwrap();
    }
    let acc = adalines.accuracy(test_x, test_y).unwrap();
    assert!(acc > 0.85, "adaline one-vs-rest: {acc}");

    let mut madalines = OneVsRest::new(10, |c| Madaline::new(d, 3, 0.5, c as u64)).unwrap();
    for epoch in 0..10 {
        madalines.epoch(train_x, train_y, Some(epoch)).unwrap();
    }
    let acc = madalines.accuracy(test_x, test_y).unwrap();
    assert!(acc > 0.8, "madaline one-vs-rest: {acc}");
}

#[test]
fn mark_i_perceptron_reads_mnist_through_a_400_cell_retina() {
    let data = load("mnist", &repo_data("mnist"), Split::Test).unwrap();
    let x = data.to_f32();
    let (x, y) = (x.as_slice(), data.labels());
    let retina: Vec<f32> = x
        .chunks(28 * 28)
        .take(3000)
        .flat_map(|img| mark_i_retina(img, 28, 28).unwrap())
        .collect();
    let (train_x, test_x) = retina.split_at(2000 * 400);
    let (train_y, test_y) = (&y[..2000], &y[2000..3000]);
    let mut mark_i = OneVsRest::new(10, |_| Perceptron::new(400, 1.0)).unwrap();
    for epoch in 0..5 {
        mark_i.epoch(train_x, train_y, Some(epoch)).unwrap();
    }
    let acc = mark_i.accuracy(test_x, test_y).unwrap();
    assert!(acc > 0.75, "Mark I on MNIST: {acc}");
}
