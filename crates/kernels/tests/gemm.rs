//! GEMM against a plain f64 reference, over shapes that break tiling, every layout, every
//! instruction-set path and 1 and 2 threads.

mod common;

use proptest::prelude::*;
use ventral_kernels::gemm::{MatBatchMut, MatBatchRef, MatMut, MatRef, gemm_batched_on, gemm_on};
use ventral_kernels::{Isa, KernelError};

use common::pool;

fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    common::random_vec(len, -1.0, 1.0, seed)
}

/// How a matrix is laid out in memory.
#[derive(Debug, Clone, Copy)]
enum Layout {
    RowMajor,
    ColMajor,
    /// Row-major with 3 unused elements after every row (a sub-block of a wider matrix).
    PaddedRows,
    /// Column-major with 5 unused elements after every column.
    PaddedCols,
}

impl Layout {
    /// `(row_stride, col_stride, elements needed)` for a `rows x cols` matrix.
    fn strides(self, rows: usize, cols: usize) -> (usize, usize, usize) {
        let (rs, cs) = match self {
            Layout::RowMajor => (cols.max(1), 1),
            Layout::ColMajor => (1, rows.max(1)),
            Layout::PaddedRows => (cols + 3, 1),
            Layout::PaddedCols => (1, rows + 5),
        };
        let len = if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        };
        (rs, cs, len)
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::RowMajor),
        Just(Layout::ColMajor),
        Just(Layout::PaddedRows),
        Just(Layout::PaddedCols)
    ]
}

/// Sizes that straddle the register tiles (MR = 6, NR = 8 or 16), the small-path cut-off (32)
/// and a cache block boundary, plus anything in 0..=130.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![
            0, 1, 2, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 130
        ]),
        0usize..=130,
    ]
}

fn scalar() -> impl Strategy<Value = f32> {
    prop::sample::select(vec![0.0f32, 1.0, -1.0, 2.5])
}

/// `alpha * A * B + beta * C` in f64, element by element, with `|alpha| * sum |a||b| + |beta c|`
/// as the scale of the rounding error an f32 computation may make.
fn reference(
    alpha: f32,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    beta: f32,
    c: &[f32],
    crs: usize,
    ccs: usize,
) -> Vec<(f64, f64)> {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let (mut dot, mut mag) = (0.0f64, 0.0f64);
            for p in 0..k {
                let prod = a.get(i, p) as f64 * b.get(p, j) as f64;
                dot += prod;
                mag += prod.abs();
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                c[i * crs + j * ccs] as f64
            };
            out.push((
                alpha as f64 * dot + beta as f64 * old,
                (alpha as f64).abs() * mag + (beta as f64 * old).abs(),
            ));
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    layouts: [Layout; 3],
    alpha: f32,
    beta: f32,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        dim(),
        dim(),
        dim(),
        [layout(), layout(), layout()],
        scalar(),
        scalar(),
        any::<u64>(),
    )
        .prop_map(|(m, k, n, layouts, alpha, beta, seed)| Case {
            m,
            k,
            n,
            layouts,
            alpha,
            beta,
            seed,
        })
}

/// Runs the case on `isa` with `threads` threads and returns C's storage.
fn run(case: &Case, isa: Isa, threads: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let Case {
        m,
        k,
        n,
        layouts,
        alpha,
        beta,
        seed,
    } = *case;
    let (ars, acs, alen) = layouts[0].strides(m, k);
    let (brs, bcs, blen) = layouts[1].strides(k, n);
    let (crs, ccs, clen) = layouts[2].strides(m, n);
    let a = random_vec(alen, seed);
    let b = random_vec(blen, seed ^ 1);
    // beta = 0 must never read C: fill it with NaN so a read would poison the result.
    let c0 = if beta == 0.0 {
        vec![f32::NAN; clen]
    } else {
        random_vec(clen, seed ^ 2)
    };
    let mut c = c0.clone();
    pool(threads).install(|| {
        gemm_on(
            isa,
            alpha,
            MatRef::new(&a, m, k, ars, acs).unwrap(),
            MatRef::new(&b, k, n, brs, bcs).unwrap(),
            beta,
            MatMut::new(&mut c, m, n, crs, ccs).unwrap(),
        )
        .unwrap()
    });
    (a, b, c0, c)
}

fn check_against_reference(
    case: &Case,
    isa: Isa,
    threads: usize,
) -> Result<Vec<f32>, TestCaseError> {
    let Case {
        m,
        k,
        n,
        layouts,
        alpha,
        beta,
        ..
    } = *case;
    let (a, b, c0, c) = run(case, isa, threads);
    let (ars, acs, _) = layouts[0].strides(m, k);
    let (brs, bcs, _) = layouts[1].strides(k, n);
    let (crs, ccs, _) = layouts[2].strides(m, n);
    let av = MatRef::new(&a, m, k, ars, acs).unwrap();
    let bv = MatRef::new(&b, k, n, brs, bcs).unwrap();
    let expected = reference(alpha, &av, &bv, beta, &c0, crs, ccs);
    // f32 summation of k products errs by at most about k * eps relative to sum |a||b|.
    let eps = f32::EPSILON as f64 * (k as f64 + 4.0);
    for i in 0..m {
        for j in 0..n {
            let got = c[i * crs + j * ccs] as f64;
            let (want, scale) = expected[i * n + j];
            prop_assert!(
                (got - want).abs() <= eps * scale + 1e-30,
                "{isa:?} {threads}T: C[{i},{j}] = {got}, want {want} (scale {scale})"
            );
        }
    }
    Ok(c)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn gemm_matches_reference_on_every_path(case in case()) {
        for isa in common::isas() {
            let one = check_against_reference(&case, isa, 1)?;
            let two = check_against_reference(&case, isa, 2)?;
            // Deterministic: the same bits at any thread count.
            let same = one.iter().zip(&two).all(|(x, y)| x.to_bits() == y.to_bits());
            prop_assert!(same, "{:?}: 1 and 2 threads differ", isa);
        }
    }
}

#[test]
fn one_row_times_contiguous_columns_matches_reference() {
    // One row of A times a B whose columns are contiguous (a linear layer's transposed
    // weights at batch 1) is a dot product per column (`gemm/row.rs`): depths around its
    // 16 lanes and its 64-deep cut-off, column counts around its 64-column tasks and its
    // parallel threshold (65,536 elements of B), strided A and C, beta on and off.
    let shapes = [
        (64, 1),
        (65, 17),
        (79, 63),
        (300, 65),
        (1031, 129),
        (2048, 1000),
    ];
    let layouts = [
        [Layout::RowMajor, Layout::ColMajor, Layout::RowMajor],
        [Layout::PaddedCols, Layout::PaddedCols, Layout::ColMajor],
    ];
    for (i, ((k, n), layouts)) in shapes.iter().zip(layouts.iter().cycle()).enumerate() {
        let case = Case {
            m: 1,
            k: *k,
            n: *n,
            layouts: *layouts,
            alpha: 1.5,
            beta: if i % 2 == 0 { 0.0 } else { -0.5 },
            seed: i as u64,
        };
        for isa in common::isas() {
            let one = check_against_reference(&case, isa, 1).unwrap();
            let two = check_against_reference(&case, isa, 2).unwrap();
            assert_eq!(
                common::bits(&one),
                common::bits(&two),
                "{case:?} on {isa:?}"
            );
        }
    }
}

#[test]
fn cache_block_boundaries_match_reference() {
    // Shapes that cross KC = 256 (several k blocks, so beta applies once and later blocks
    // accumulate), MC = 192 (several row blocks), the streamed NC = 1024 for single row
    // blocks and NC = 3072 otherwise; odd edges everywhere. Single row blocks over several B
    // blocks also run the micro-kernels' prefetch of the next block (6 rows: the narrow tile).
    let shapes = [
        (200, 600, 50),
        (17, 300, 2100),
        (6, 270, 1100),
        (193, 40, 3100),
        (33, 513, 1030),
        (1, 700, 1),
    ];
    for isa in common::isas() {
        for (m, k, n) in shapes {
            for threads in [1, 2] {
                let case = Case {
                    m,
                    k,
                    n,
                    layouts: [Layout::RowMajor, Layout::RowMajor, Layout::PaddedRows],
                    alpha: 2.5,
                    beta: -1.0,
                    seed: (m * k * n) as u64,
                };
                check_against_reference(&case, isa, threads).unwrap();
            }
        }
    }
}

#[test]
fn large_products_are_bit_identical_across_thread_counts() {
    // Big enough to be split across threads, with edges that are not multiples of MR or NR.
    for isa in common::isas() {
        // The first two split columns (several MC- and KC-blocks, ragged ones last): 301
        // rows with A packed once for both threads, 600 (at least half of any MC block) with
        // each thread packing its own A where the A panel sits in L1.
        for (m, k, n) in [
            (301, 263, 517),
            (600, 530, 650),
            (517, 300, 41),
            (16, 144, 4099),
        ] {
            let case = Case {
                m,
                k,
                n,
                layouts: [Layout::RowMajor; 3],
                alpha: 1.0,
                beta: 0.0,
                seed: 7,
            };
            let (_, _, _, one) = run(&case, isa, 1);
            let (_, _, _, two) = run(&case, isa, 2);
            assert!(
                one.iter()
                    .zip(&two)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{isa:?} {m}x{k}x{n}"
            );
        }
    }
}

#[test]
fn times_identity_is_exact() {
    // A * I == A to the bit: every product is a * 1 or a * 0 and every sum adds exact zeros.
    for isa in common::isas() {
        for (m, k) in [(5, 33), (6, 40), (7, 64), (13, 17), (100, 129)] {
            let a = random_vec(m * k, 3);
            let mut eye = vec![0.0; k * k];
            for i in 0..k {
                eye[i * k + i] = 1.0;
            }
            let mut c = vec![f32::NAN; m * k];
            gemm_on(
                isa,
                1.0,
                MatRef::row_major(&a, m, k).unwrap(),
                MatRef::row_major(&eye, k, k).unwrap(),
                0.0,
                MatMut::row_major(&mut c, m, k).unwrap(),
            )
            .unwrap();
            assert_eq!(a, c, "{isa:?} {m}x{k}");
        }
    }
}

#[test]
fn agrees_with_matrixmultiply() {
    for isa in common::isas() {
        let (m, k, n) = (257, 300, 129);
        let a = random_vec(m * k, 11);
        let b = random_vec(k * n, 12);
        let mut ours = vec![0.0; m * n];
        let mut peer = vec![0.0; m * n];
        gemm_on(
            isa,
            1.0,
            MatRef::row_major(&a, m, k).unwrap(),
            MatRef::row_major(&b, k, n).unwrap(),
            0.0,
            MatMut::row_major(&mut ours, m, n).unwrap(),
        )
        .unwrap();
        // SAFETY: pointers and strides describe the dense row-major buffers above.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                peer.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        let worst = ours
            .iter()
            .zip(&peer)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        // Entries are sums of 300 products of magnitude <= 1, typically about 10 in size.
        assert!(
            worst < 1e-3,
            "{isa:?}: differs from matrixmultiply by {worst}"
        );
    }
}

#[test]
fn shape_mismatch_is_an_error_naming_both_shapes() {
    let a = vec![0.0; 6];
    let b = vec![0.0; 12];
    let mut c = vec![0.0; 8];
    let err = gemm_on(
        Isa::Portable,
        1.0,
        MatRef::row_major(&a, 2, 3).unwrap(),
        MatRef::row_major(&b, 4, 3).unwrap(),
        0.0,
        MatMut::row_major(&mut c, 2, 4).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("gemm") && err.contains("[2, 3]") && err.contains("[4, 3]"),
        "{err}"
    );
}

#[test]
fn batched_matches_one_by_one_with_shared_weights() {
    // Like a convolution: one weight matrix times a batch of column matrices.
    for isa in common::isas() {
        for threads in [1, 2] {
            let (batch, m, k, n) = (5, 16, 75, 300);
            let w = random_vec(m * k, 21);
            let x = random_vec(batch * k * n, 22);
            let mut y = vec![f32::NAN; batch * m * n];
            pool(threads).install(|| {
                gemm_batched_on(
                    isa,
                    1.0,
                    MatBatchRef::broadcast(MatRef::row_major(&w, m, k).unwrap(), batch),
                    MatBatchRef::row_major(&x, batch, k, n).unwrap(),
                    0.0,
                    MatBatchMut::row_major(&mut y, batch, m, n).unwrap(),
                )
                .unwrap()
            });
            for i in 0..batch {
                let mut one = vec![0.0; m * n];
                gemm_on(
                    isa,
                    1.0,
                    MatRef::row_major(&w, m, k).unwrap(),
                    MatRef::row_major(&x[i * k * n..(i + 1) * k * n], k, n).unwrap(),
                    0.0,
                    MatMut::row_major(&mut one, m, n).unwrap(),
                )
                .unwrap();
                assert_eq!(
                    one,
                    y[i * m * n..(i + 1) * m * n],
                    "{isa:?} {threads}T item {i}"
                );
            }
        }
    }
}

#[test]
fn batched_rejects_mismatched_batches_and_overlapping_items() {
    let w = vec![0.0; 4];
    let x = vec![0.0; 8];
    let mut y = vec![0.0; 12];
    let err = gemm_batched_on(
        Isa::Portable,
        1.0,
        MatBatchRef::broadcast(MatRef::row_major(&w, 2, 2).unwrap(), 2),
        MatBatchRef::row_major(&x, 2, 2, 2).unwrap(),
        0.0,
        MatBatchMut::row_major(&mut y, 3, 2, 2).unwrap(),
    );
    assert_eq!(
        err,
        Err(KernelError::ShapeMismatch {
            op: "gemm_batched",
            detail: "batch sizes differ: A has 2, B has 2, C has 3".into(),
        })
    );
    // Items 4 long, 3 apart.
    assert!(matches!(
        MatBatchMut::new(&mut y, 2, 3, 2, 2, 2, 1),
        Err(KernelError::OverlappingOutput {
            op: "MatBatchMut::new",
            rows: 2,
            cols: 2,
            row_stride: 2,
            col_stride: 1,
        })
    ));
}
