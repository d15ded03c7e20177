//! Axis reductions against plain f64 references over odd shapes and every axis, PyTorch's tie
//! and NaN rules for argmax/argmin, argument errors, and bit-identical results on 1 and 2
//! threads.

mod common;

use common::{assert_error, bits, pool, random_vec};
use proptest::prelude::*;
use ventral_kernels::KernelError;
use ventral_kernels::reduce::{argmax, argmin, max, max_argmax, mean, min, min_argmin, sum};

/// `[outer, axis_len, inner]` around `axis`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// The elements of output `(o, j)` along the axis, in index order.
fn lane(x: &[f32], (_, n, inner): (usize, usize, usize), o: usize, j: usize) -> Vec<f32> {
    (0..n).map(|k| x[(o * n + k) * inner + j]).collect()
}

/// Reference reduction: apply `f` to every lane.
fn reference<T>(x: &[f32], shape: &[usize], axis: usize, f: impl Fn(&[f32]) -> T) -> Vec<T> {
    let dims = split(shape, axis);
    let mut out = Vec::new();
    for o in 0..dims.0 {
        for j in 0..dims.2 {
            out.push(f(&lane(x, dims, o, j)));
        }
    }
    out
}

/// First index of the max (`greater = true`) or min, NaN counting as the extreme.
fn first_extreme(v: &[f32], greater: bool) -> (f32, usize) {
    if let Some(i) = v.iter().position(|x| x.is_nan()) {
        return (f32::NAN, i);
    }
    let mut best = 0;
    for i in 1..v.len() {
        if (greater && v[i] > v[best]) || (!greater && v[i] < v[best]) {
            best = i;
        }
    }
    (v[best], best)
}

fn shape_and_axis() -> impl Strategy<Value = (Vec<usize>, usize)> {
    let dim = prop_oneof![
        Just(1usize),
        Just(2),
        Just(7),
        Just(17),
        Just(63),
        Just(65),
        1usize..40
    ];
    prop::collection::vec(dim, 1..=4)
        .prop_filter("keep tests small", |s| {
            s.iter().product::<usize>() <= 60_000
        })
        .prop_flat_map(|s| {
            let rank = s.len();
            (Just(s), 0..rank)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sum_and_mean_match_f64((shape, axis) in shape_and_axis(), seed in any::<u64>()) {
        let n: usize = shape.iter().product();
        let x = random_vec(n, -1.0, 1.0, seed);
        let exact = reference(&x, &shape, axis, |v| v.iter().map(|&e| f64::from(e)).sum::<f64>());
        let abs = reference(&x, &shape, axis, |v| v.iter().map(|&e| f64::from(e).abs()).sum::<f64>());
        let mut got = vec![f32::NAN; exact.len()];
        sum(&x, &shape, axis, &mut got).unwrap();
        // f64 accumulation: the only error that matters is the final rounding to f32 (half an
        // ulp of the result), plus f64 reordering error, far below 1e-12 of Σ|x|.
        for ((g, e), a) in got.iter().zip(&exact).zip(&abs) {
            let ulp = f64::from(f32::EPSILON) * e.abs();
            prop_assert!((f64::from(*g) - e).abs() <= 0.5 * ulp + 1e-12 * a, "{} vs {}", g, e);
        }
        let len = shape[axis] as f64;
        mean(&x, &shape, axis, &mut got).unwrap();
        for (g, e) in got.iter().zip(&exact) {
            let m = e / len;
            let ulp = f64::from(f32::EPSILON) * m.abs();
            prop_assert!((f64::from(*g) - m).abs() <= 0.5 * ulp + 1e-12, "{} vs {}", g, m);
        }
    }

    #[test]
    fn max_min_and_arg_match_reference_with_many_ties(
        (shape, axis) in shape_and_axis(),
        seed in any::<u64>(),
    ) {
        let n: usize = shape.iter().product();
        // Only four distinct values, so most lanes have tied extremes.
        let x: Vec<f32> = random_vec(n, 0.0, 4.0, seed).into_iter().map(f32::floor).collect();
        for greater in [true, false] {
            let want = reference(&x, &shape, axis, |v| first_extreme(v, greater));
            let (mut vals, mut idx) = (vec![f32::NAN; want.len()], vec![usize::MAX; want.len()]);
            let (mut vals2, mut idx2) = (vals.clone(), idx.clone());
            if greater {
                max_argmax(&x, &shape, axis, &mut vals, &mut idx).unwrap();
                max(&x, &shape, axis, &mut vals2).unwrap();
                argmax(&x, &shape, axis, &mut idx2).unwrap();
            } else {
                min_argmin(&x, &shape, axis, &mut vals, &mut idx).unwrap();
                min(&x, &shape, axis, &mut vals2).unwrap();
                argmin(&x, &shape, axis, &mut idx2).unwrap();
            }
            let want_vals: Vec<f32> = want.iter().map(|w| w.0).collect();
            let want_idx: Vec<usize> = want.iter().map(|w| w.1).collect();
            prop_assert_eq!(&vals, &want_vals);
            prop_assert_eq!(&idx, &want_idx);
            prop_assert_eq!(&vals2, &want_vals);
            prop_assert_eq!(&idx2, &want_idx);
        }
    }
}

#[test]
fn argmax_ties_take_the_first_index() {
    // Row 0 has its max 3 at indices 1 and 3; row 1 is constant; PyTorch answers 1 and 0.
    let x = [1.0, 3.0, 2.0, 3.0, 5.0, 5.0, 5.0, 5.0];
    let mut idx = [9; 2];
    argmax(&x, &[2, 4], 1, &mut idx).unwrap();
    assert_eq!(idx, [1, 0]);
    argmin(&x, &[2, 4], 1, &mut idx).unwrap();
    assert_eq!(idx, [0, 0]);
    // Along axis 0 of the same [2, 4]: column 1 ties at 3 vs 5 → 1; column 3 ties at 3 vs 5.
    let mut idx = [9; 4];
    argmax(&x, &[2, 4], 0, &mut idx).unwrap();
    assert_eq!(idx, [1, 1, 1, 1]);
    // -0.0 == 0.0 is a tie too.
    let mut one = [9];
    argmax(&[-0.0, 0.0], &[2], 0, &mut one).unwrap();
    assert_eq!(one, [0]);
}

#[test]
fn nan_propagates_and_argmax_points_at_the_first_nan() {
    let x = [1.0, f32::NAN, 7.0, f32::NAN];
    let (mut v, mut i) = ([0.0], [9]);
    max_argmax(&x, &[4], 0, &mut v, &mut i).unwrap();
    assert!(v[0].is_nan());
    assert_eq!(i, [1]);
    min_argmin(&x, &[4], 0, &mut v, &mut i).unwrap();
    assert!(v[0].is_nan());
    assert_eq!(i, [1]);
    // In a strided reduction too: [[1, 7], [NaN, 2]] along axis 0 has columns [1, NaN]
    // (max NaN at row 1) and [7, 2] (max 7 at row 0).
    let (mut v2, mut i2) = ([0.0; 2], [9; 2]);
    max_argmax(&[1.0, 7.0, f32::NAN, 2.0], &[2, 2], 0, &mut v2, &mut i2).unwrap();
    assert!(v2[0].is_nan());
    assert_eq!((v2[1], i2), (7.0, [1, 0]));
}

#[test]
fn empty_axes_and_bad_arguments() {
    // Sum over an empty axis is 0 and its mean 0/0 = NaN (as PyTorch); max has no answer.
    let mut out = [9.0; 3];
    sum(&[], &[3, 0], 1, &mut out).unwrap();
    assert_eq!(out, [0.0; 3]);
    mean(&[], &[3, 0], 1, &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_nan()));
    let err = max(&[], &[3, 0], 1, &mut out).unwrap_err();
    assert!(
        matches!(err, KernelError::ShapeMismatch { op: "max", .. }),
        "{err}"
    );
    // Reducing an axis of a tensor with no outputs is fine.
    sum(&[], &[0, 4], 1, &mut []).unwrap();
    // Axis out of range, wrong input length, wrong output length.
    let x = [0.0; 6];
    let err = sum(&x, &[2, 3], 2, &mut out).unwrap_err();
    assert!(err.to_string().contains("axis 2"), "{err}");
    assert_error(
        sum(&x[..5], &[2, 3], 1, &mut out[..2]),
        "ShapeMismatch",
        "sum: the input has 5 elements, but shape [2, 3] needs 6",
    );
    assert_error(
        sum(&x, &[2, 3], 1, &mut out),
        "ShapeMismatch",
        "sum: out has 3 elements, but shape [2] needs 2",
    );
    assert_error(
        argmax(&x, &[2, 3], 0, &mut [0; 2]),
        "ShapeMismatch",
        "argmax: values has 2 elements, but shape [3] needs 3",
    );
    assert_error(
        sum(&x, &[], 0, &mut out),
        "ShapeMismatch",
        "sum: axis 0 is out of range for shape [] of rank 0",
    );
}

#[test]
fn results_are_bit_identical_on_one_and_two_threads() {
    // A single long row (block-parallel sum), many rows, and a strided axis; all above the
    // parallel threshold. Values of mixed magnitude make the summation order visible.
    let mut x = random_vec(300_007, -1.0, 1.0, 21);
    for (i, v) in x.iter_mut().enumerate() {
        *v *= [1.0, 1e4, 1e-4][i % 3];
    }
    let cases: [(&[usize], usize); 4] = [
        (&[300_007], 0),
        (&[1000, 300], 1),
        (&[7, 42_857], 0),
        (&[1000, 100, 3], 1),
    ];
    for (shape, axis) in cases {
        let n: usize = shape.iter().product();
        let x = &x[..n];
        let outs: usize = n / shape[axis];
        let run = || {
            let mut s = vec![0.0; outs];
            let mut m = vec![0.0; outs];
            let (mut v, mut i) = (vec![0.0; outs], vec![0; outs]);
            sum(x, shape, axis, &mut s).unwrap();
            mean(x, shape, axis, &mut m).unwrap();
            max_argmax(x, shape, axis, &mut v, &mut i).unwrap();
            (s, m, v, i)
        };
        let one = pool(1).install(run);
        let two = pool(2).install(run);
        assert_eq!(bits(&one.0), bits(&two.0), "sum {shape:?} axis {axis}");
        assert_eq!(bits(&one.1), bits(&two.1), "mean {shape:?} axis {axis}");
        assert_eq!(bits(&one.2), bits(&two.2), "max {shape:?} axis {axis}");
        assert_eq!(one.3, two.3, "argmax {shape:?} axis {axis}");
    }
}
