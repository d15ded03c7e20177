//! Binary arithmetic with NumPy broadcasting and its backward reduction, against a plain
//! index-arithmetic reference, over odd shapes, rank mismatches, scalars and bad shapes.

mod common;

use common::{assert_error, bits, pool, random_vec};
use proptest::prelude::*;
use ventral_kernels::elementwise::{add, add_on, div_on, mul_on, sub_on, sum_to_shape};
use ventral_kernels::shape::broadcast_shape;
use ventral_kernels::{Isa, KernelError, Result};

type BinaryOn = fn(Isa, &[f32], &[usize], &[f32], &[usize], &mut [f32]) -> Result<()>;
type Reference = fn(f64, f64) -> f64;

/// Each op with its f64 definition. For +, -, *, / of two f32s, the f64 result rounded to f32
/// is the correctly rounded f32 result (53 ≥ 2·24 + 2, so double rounding is innocuous), so
/// the kernels must match it bit for bit.
const OPS: [(&str, BinaryOn, Reference); 4] = [
    ("add", add_on, |a, b| a + b),
    ("sub", sub_on, |a, b| a - b),
    ("mul", mul_on, |a, b| a * b),
    ("div", div_on, |a, b| a / b),
];

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Offset in an operand of `shape` of the output element at multi-index `idx` (output rank).
fn source_offset(idx: &[usize], shape: &[usize]) -> usize {
    let pad = idx.len() - shape.len();
    let st = strides(shape);
    (0..shape.len())
        .map(|d| {
            if shape[d] == 1 {
                0
            } else {
                idx[pad + d] * st[d]
            }
        })
        .sum()
}

/// Multi-index of flat position `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    idx
}

/// The reference: for every output index, read each operand at its broadcast position.
fn reference(
    f: fn(f64, f64) -> f64,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out_shape: &[usize],
) -> Vec<f32> {
    (0..numel(out_shape))
        .map(|i| {
            let idx = unravel(i, out_shape);
            let av = f64::from(a[source_offset(&idx, a_shape)]);
            let bv = f64::from(b[source_offset(&idx, b_shape)]);
            f(av, bv) as f32
        })
        .collect()
}

/// An output shape of rank 0 to 4 with odd sizes, and two operand shapes that broadcast to
/// it: each keeps a random suffix of the dimensions and turns some of them into 1.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    let dim = prop_oneof![
        Just(1usize),
        Just(2),
        Just(3),
        Just(7),
        Just(17),
        Just(63),
        Just(65)
    ];
    prop::collection::vec(dim, 0..=4)
        .prop_filter("keep tests small", |s| numel(s) <= 40_000)
        .prop_flat_map(|out| {
            let rank = out.len();
            let operand = (0..=rank, prop::collection::vec(any::<bool>(), rank)).prop_map({
                let out = out.clone();
                move |(keep, ones)| {
                    (rank - keep..rank)
                        .map(|d| if ones[d] { 1 } else { out[d] })
                        .collect::<Vec<usize>>()
                }
            });
            (Just(out), operand.clone(), operand)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn broadcast_ops_match_reference((_, a_shape, b_shape) in broadcast_pair(), seed in any::<u64>()) {
        let out_shape = broadcast_shape("test", &a_shape, &b_shape).unwrap();
        let a = random_vec(numel(&a_shape), -2.0, 2.0, seed);
        // Keep divisors away from 0 so the quotients stay moderate.
        let b: Vec<f32> = random_vec(numel(&b_shape), 0.5, 2.0, seed ^ 1)
            .into_iter()
            .enumerate()
            .map(|(i, v)| if i % 3 == 0 { -v } else { v })
            .collect();
        for (name, op, f) in OPS {
            let want = reference(f, &a, &a_shape, &b, &b_shape, &out_shape);
            for isa in common::isas() {
                let mut out = vec![f32::NAN; want.len()];
                op(isa, &a, &a_shape, &b, &b_shape, &mut out).unwrap();
                prop_assert_eq!(
                    bits(&out), bits(&want),
                    "{} {:?} with {:?} on {:?}", name, a_shape, b_shape, isa
                );
            }
        }
    }

    #[test]
    fn sum_to_shape_inverts_broadcasting((out_shape, shape, _) in broadcast_pair(), seed in any::<u64>()) {
        let full = broadcast_shape("test", &shape, &out_shape).unwrap();
        let grad = random_vec(numel(&full), -1.0, 1.0, seed);
        // Reference: add every gradient element into the operand element it was read from.
        let mut want = vec![0.0f64; numel(&shape)];
        for (i, &g) in grad.iter().enumerate() {
            want[source_offset(&unravel(i, &full), &shape)] += f64::from(g);
        }
        let mut got = vec![f32::NAN; want.len()];
        sum_to_shape(&grad, &full, &shape, &mut got).unwrap();
        for (g, w) in got.iter().zip(&want) {
            // Both sum in f64; they may differ in the last f64 bits, so allow one f32 ulp.
            prop_assert!((f64::from(*g) - w).abs() <= 1e-6 * w.abs().max(1e-3), "{} vs {}", g, w);
        }
    }
}

/// `op(a, b)` for explicit shapes, on the default path.
fn add_shapes(a_shape: &[usize], b_shape: &[usize]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let a: Vec<f32> = (0..numel(a_shape)).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..numel(b_shape))
        .map(|i| 100.0 * (i as f32 + 1.0))
        .collect();
    let out_shape = broadcast_shape("add", a_shape, b_shape).unwrap();
    let mut out = vec![f32::NAN; numel(&out_shape)];
    add(&a, a_shape, &b, b_shape, &mut out).unwrap();
    (a, b, out)
}

#[test]
fn column_plus_row_is_an_outer_sum() {
    // [3, 1] + [1, 4] = [3, 4] with out[i][j] = a[i] + b[j] = i + 100 (j + 1).
    let (_, _, out) = add_shapes(&[3, 1], &[1, 4]);
    let want: Vec<f32> = (0..12)
        .map(|k| (k / 4) as f32 + 100.0 * ((k % 4) as f32 + 1.0))
        .collect();
    assert_eq!(out, want);
}

#[test]
fn row_vector_repeats_over_rank_mismatch() {
    // [5, 4] + [4]: b (100, 200, 300, 400) is added to every row of a = 0..20.
    let (_, _, out) = add_shapes(&[5, 4], &[4]);
    let want: Vec<f32> = (0..20)
        .map(|k| k as f32 + 100.0 * ((k % 4) as f32 + 1.0))
        .collect();
    assert_eq!(out, want);
    // [2, 3, 4] + [3, 1]: b[j] = 100 (j + 1) is added along the last axis.
    let (_, _, out) = add_shapes(&[2, 3, 4], &[3, 1]);
    let want: Vec<f32> = (0..24)
        .map(|k| k as f32 + 100.0 * (((k / 4) % 3) as f32 + 1.0))
        .collect();
    assert_eq!(out, want);
}

#[test]
fn scalars_broadcast_against_anything() {
    // [] + [2, 3]: the scalar 0 plus b; [2, 3] + [] adds 100 to each element; [] + [] = [].
    let (_, b, out) = add_shapes(&[], &[2, 3]);
    assert_eq!(out, b);
    let (a, _, out) = add_shapes(&[2, 3], &[]);
    assert_eq!(out, a.iter().map(|v| v + 100.0).collect::<Vec<_>>());
    let (_, _, out) = add_shapes(&[], &[]);
    assert_eq!(out, [100.0]);
    let (_, _, out) = add_shapes(&[1, 1], &[1]);
    assert_eq!(out, [100.0]);
}

#[test]
fn zero_sized_dimensions_broadcast_to_empty() {
    // 1 broadcasts to 0, so [1, 3] with [0, 3] is empty and nothing is read.
    assert_eq!(broadcast_shape("add", &[1, 3], &[0, 3]).unwrap(), [0, 3]);
    let mut out: [f32; 0] = [];
    add(&[1.0, 2.0, 3.0], &[1, 3], &[], &[0, 3], &mut out).unwrap();
}

#[test]
fn incompatible_shapes_name_the_op_and_both_shapes() {
    let mut out = [0.0; 6];
    let err = mul_on(Isa::Portable, &[0.0; 6], &[3, 2], &[0.0; 4], &[4], &mut out).unwrap_err();
    let KernelError::ShapeMismatch { op, detail } = &err else {
        panic!("wrong error {err:?}");
    };
    assert_eq!(*op, "mul");
    assert!(
        detail.contains("[3, 2]") && detail.contains("[4]"),
        "{detail}"
    );
    assert!(err.to_string().starts_with("mul: "), "{err}");
}

#[test]
fn slice_lengths_must_match_shapes() {
    let mut out = [0.0; 4];
    // a claims [2, 2] but has 3 elements; out has the wrong size for [2, 2].
    assert_error(
        add(&[0.0; 3], &[2, 2], &[1.0], &[], &mut out),
        "ShapeMismatch",
        "add: a has 3 elements, but shape [2, 2] needs 4",
    );
    assert_error(
        add(&[0.0; 4], &[2, 2], &[1.0], &[], &mut out[..3]),
        "ShapeMismatch",
        "add: out has 3 elements, but shape [2, 2] needs 4",
    );
    // A shape whose element count overflows usize is an error, not a panic.
    assert_error(
        add(&[0.0], &[usize::MAX, 2], &[1.0], &[], &mut out),
        "ShapeMismatch",
        "has more elements than fit in usize",
    );
    // sum_to_shape refuses a target that does not broadcast to the gradient's shape.
    assert_error(
        sum_to_shape(&[0.0; 6], &[2, 3], &[2, 1, 3], &mut [0.0; 6]),
        "ShapeMismatch",
        "sum_to_shape: shape [2, 1, 3] does not broadcast to gradient shape [2, 3]",
    );
    assert_error(
        sum_to_shape(&[0.0; 6], &[2, 3], &[2, 2], &mut [0.0; 4]),
        "ShapeMismatch",
        "sum_to_shape: shapes [2, 2] and [2, 3] cannot be broadcast",
    );
}

#[test]
fn large_broadcasts_give_identical_bits_on_one_and_two_threads() {
    // [400, 1, 300] / [1, 3, 300]: above the parallel threshold with a short inner row.
    let (sa, sb) = ([400, 1, 300], [1, 3, 300]);
    let a = random_vec(numel(&sa), -1.0, 1.0, 5);
    let b = random_vec(numel(&sb), 0.5, 1.5, 6);
    let run = || {
        let mut out = vec![0.0; 400 * 3 * 300];
        div_on(Isa::best_available(), &a, &sa, &b, &sb, &mut out).unwrap();
        out
    };
    let one = pool(1).install(run);
    let two = pool(2).install(run);
    assert_eq!(bits(&one), bits(&two));
    let want = reference(|x, y| x / y, &a, &sa, &b, &sb, &[400, 3, 300]);
    assert_eq!(bits(&two), bits(&want));
}
