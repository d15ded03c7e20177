//! Every GEMM micro-kernel candidate this CPU supports ([`GemmKernel::available`]), forced
//! through [`gemm_with`]: against an f64 reference over the ragged edges of each tile shape
//! and each KC block, and bit for bit against each other and across 1 and 2 threads.

use std::sync::OnceLock;

use proptest::prelude::*;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use ventral_kernels::gemm::{GemmKernel, MatMut, MatRef, PARALLEL_MIN_FLOPS, gemm_with};

fn pool(threads: usize) -> &'static rayon::ThreadPool {
    static POOLS: OnceLock<[rayon::ThreadPool; 2]> = OnceLock::new();
    let pools = POOLS.get_or_init(|| {
        [1, 2].map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("thread pool")
        })
    });
    &pools[threads - 1]
}

fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// A matrix stored with explicit strides inside a buffer that has `pad` extra floats after
/// each row (row-major) or column (column-major), so writes outside the view are caught.
#[derive(Debug, Clone, Copy)]
struct Layout {
    col_major: bool,
    pad: usize,
}

impl Layout {
    /// `(row_stride, col_stride, buffer length)` for a `rows x cols` matrix.
    fn strides(self, rows: usize, cols: usize) -> (usize, usize, usize) {
        if self.col_major {
            let cs = rows + self.pad;
            (1, cs, cs * cols)
        } else {
            let rs = cols + self.pad;
            (rs, 1, rs * rows)
        }
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    (any::<bool>(), prop::sample::select(vec![0usize, 3]))
        .prop_map(|(col_major, pad)| Layout { col_major, pad })
}

/// `alpha * A * B + beta * C` in f64, and for each element the bound on the f32 result's
/// error: a chain of `k` FMAs and the final scaling round at most `k + 2` times, each by at
/// most one unit roundoff of the running magnitude, so
/// `|err| <= (k + 2) * u * (|alpha| * sum |a| |b| + |beta| |c|)`, with `u = 2^-24`.
#[allow(clippy::too_many_arguments)]
fn reference(
    alpha: f32,
    a: &[f32],
    (ars, acs): (usize, usize),
    b: &[f32],
    (brs, bcs): (usize, usize),
    beta: f32,
    c: &[f32],
    (crs, ccs): (usize, usize),
    (m, k, n): (usize, usize, usize),
) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let (mut sum, mut abs) = (0.0f64, 0.0f64);
            for p in 0..k {
                let prod = a[i * ars + p * acs] as f64 * b[p * brs + j * bcs] as f64;
                sum += prod;
                abs += prod.abs();
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                c[i * crs + j * ccs] as f64
            };
            let value = alpha as f64 * sum + beta as f64 * old;
            let scale = (alpha as f64).abs() * abs + (beta as f64 * old).abs();
            let bound = (k as f64 + 2.0) * f64::from(f32::EPSILON) / 2.0 * scale;
            out.push((value, bound + f64::from(f32::MIN_POSITIVE)));
        }
    }
    out
}

/// One product on one candidate and thread count, checked against the f64 reference; also
/// checks that `beta == 0` never read C (it starts as NaN) and that nothing outside C's view
/// changed.
#[allow(clippy::too_many_arguments)]
fn check_candidate(
    kernel: GemmKernel,
    threads: usize,
    (m, k, n): (usize, usize, usize),
    (la, lb, lc): (Layout, Layout, Layout),
    alpha: f32,
    beta: f32,
    seed: u64,
) -> Result<(), TestCaseError> {
    let (ars, acs, alen) = la.strides(m, k);
    let (brs, bcs, blen) = lb.strides(k, n);
    let (crs, ccs, clen) = lc.strides(m, n);
    let a = random_vec(alen, seed);
    let b = random_vec(blen, seed + 1);
    let mut c = random_vec(clen, seed + 2);
    // Padding holds a sentinel that must survive; with beta == 0, C itself starts as NaN.
    let inside = |idx: usize| {
        let (major, minor) = if lc.col_major {
            (idx / (m + lc.pad), idx % (m + lc.pad))
        } else {
            (idx / (n + lc.pad), idx % (n + lc.pad))
        };
        let _ = major;
        minor < if lc.col_major { m } else { n }
    };
    for (idx, v) in c.iter_mut().enumerate() {
        if !inside(idx) {
            *v = 1234.5;
        } else if beta == 0.0 {
            *v = f32::NAN;
        }
    }
    let want = reference(
        alpha,
        &a,
        (ars, acs),
        &b,
        (brs, bcs),
        beta,
        &c,
        (crs, ccs),
        (m, k, n),
    );
    let a_view = MatRef::new(&a, m, k, ars, acs).expect("valid A view");
    let b_view = MatRef::new(&b, k, n, brs, bcs).expect("valid B view");
    pool(threads).install(|| {
        let c_view = MatMut::new(&mut c, m, n, crs, ccs).expect("valid C view");
        gemm_with(kernel, alpha, a_view, b_view, beta, c_view).expect("supported kernel")
    });
    for i in 0..m {
        for j in 0..n {
            let got = c[i * crs + j * ccs] as f64;
            let (value, bound) = want[i * n + j];
            prop_assert!(
                (got - value).abs() <= bound,
                "{kernel} on {threads} thread(s), {m}x{k}x{n}, alpha {alpha}, beta {beta}: \
                 C[{i}, {j}] = {got}, want {value} within {bound}"
            );
        }
    }
    for (idx, v) in c.iter().enumerate() {
        if !inside(idx) {
            prop_assert_eq!(*v, 1234.5, "{} wrote outside C at {}", kernel, idx);
        }
    }
    Ok(())
}

/// The KC every candidate uses on this machine (it depends on the caches only).
fn kc() -> usize {
    let kcs: Vec<usize> = GemmKernel::available()
        .iter()
        .map(|k| k.blocking().kc)
        .collect();
    assert!(
        kcs.windows(2).all(|w| w[0] == w[1]),
        "KC differs across candidates: {kcs:?}"
    );
    kcs[0]
}

/// Row counts around every tile's MR (16, 12, 6 for the narrow and AVX2 6x16 tiles, 4 for
/// the AVX2 4x24 one), the narrow-tile cut-off (8) and two tiles.
fn rows() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![
        1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 23, 24, 25, 31, 32, 33, 37,
    ])
}

/// Column counts around every tile's NR (8, 16, 24, 32) and their multiples, above the
/// small-path cut-off (32) so the packed micro-kernels run.
fn cols() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![
        7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49, 63, 64, 65, 71, 72, 73, 95, 96, 97,
    ])
}

/// Depths around one and two KC blocks, and a few shallow ones.
fn depth() -> impl Strategy<Value = usize> {
    let kc = kc();
    prop::sample::select(vec![1, 2, 33, kc - 1, kc, kc + 1, 2 * kc + 1])
}

fn scalar() -> impl Strategy<Value = f32> {
    prop::sample::select(vec![0.0f32, 1.0, -1.0, 2.5])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_candidate_matches_the_f64_reference(
        m in rows(),
        k in depth(),
        n in cols(),
        layouts in (layout(), layout(), layout()),
        alpha in scalar(),
        beta in scalar(),
        threads in 1usize..=2,
        seed in 0u64..1000,
    ) {
        // Wide and tall: the ragged row and column edges in both the column and row splits.
        for (m, n) in [(m, n), (n, m)] {
            for kernel in GemmKernel::available() {
                check_candidate(kernel, threads, (m, k, n), layouts, alpha, beta, seed)?;
            }
        }
    }
}

/// `C = alpha * A * B + beta * C` with `kernel` on `threads` threads, row-major.
fn run(
    kernel: GemmKernel,
    threads: usize,
    (m, k, n): (usize, usize, usize),
    alpha: f32,
    beta: f32,
    seed: u64,
) -> Vec<f32> {
    let a = random_vec(m * k, seed);
    let b = random_vec(k * n, seed + 1);
    let mut c = random_vec(m * n, seed + 2);
    pool(threads).install(|| {
        gemm_with(
            kernel,
            alpha,
            MatRef::row_major(&a, m, k).expect("A"),
            MatRef::row_major(&b, k, n).expect("B"),
            beta,
            MatMut::row_major(&mut c, m, n).expect("C"),
        )
        .expect("supported kernel")
    });
    c
}

#[test]
fn candidates_and_thread_counts_give_the_same_bits() {
    // The SIMD candidates fuse each multiply-add (one rounding per step). The portable kernel
    // rounds the product and the sum separately unless `wide` was compiled with FMA, so it
    // is held to the same bits across thread counts only, not against the others.
    let fused: Vec<GemmKernel> = GemmKernel::available()
        .into_iter()
        .filter(|k| *k != GemmKernel::Portable)
        .collect();
    for available in [fused, vec![GemmKernel::Portable]] {
        if !available.is_empty() {
            same_bits(&available);
        }
    }
}

/// Every kernel of `available` on 1 and 2 threads against the first on 1 thread.
fn same_bits(available: &[GemmKernel]) {
    let kc = kc();
    // Ragged in every direction, several KC blocks, more rows than one MC block of any tile
    // (m = 530 > MC on the machines in `Blocking`'s tests), more columns than one streamed
    // NC block (1024), and products of at most 8 and at most 16 rows (the narrow tiles). The
    // first three are above `PARALLEL_MIN_FLOPS`, so 2 threads split them (columns, rows,
    // columns).
    let shapes = [
        (45, 2 * kc + 3, 403),
        (530, kc + 1, 70),
        (24, 300, 1100),
        (6, 2 * kc + 5, 333),
        (16, 144, 700),
        (37, 33, 129),
    ];
    // And one row times contiguous columns (`gemm/row.rs`), its own dot products.
    let weights = random_vec(700 * 300, 9);
    let row = random_vec(300, 10);
    let one_row = |kernel, threads| {
        let mut c = vec![0.0f32; 700];
        pool(threads).install(|| {
            gemm_with(
                kernel,
                1.0,
                MatRef::row_major(&row, 1, 300).expect("A"),
                MatRef::row_major(&weights, 700, 300).expect("W").t(),
                0.0,
                MatMut::row_major(&mut c, 1, 700).expect("C"),
            )
            .expect("supported kernel")
        });
        c
    };
    let first = one_row(available[0], 1);
    for &kernel in available {
        for threads in [1, 2] {
            let got = one_row(kernel, threads);
            assert!(
                first
                    .iter()
                    .zip(&got)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{kernel} on {threads} thread(s): one-row product differs"
            );
        }
    }
    for (m, k, n) in &shapes[..3] {
        assert!(
            2 * m * k * n >= PARALLEL_MIN_FLOPS,
            "{m}x{k}x{n} stays on one thread"
        );
    }
    for (shape, (alpha, beta)) in shapes.into_iter().zip([(1.0, 0.0), (2.5, -1.0)].repeat(3)) {
        let first = run(available[0], 1, shape, alpha, beta, 7);
        for &kernel in available {
            for threads in [1, 2] {
                let got = run(kernel, threads, shape, alpha, beta, 7);
                let diff = first
                    .iter()
                    .zip(&got)
                    .position(|(x, y)| x.to_bits() != y.to_bits());
                assert_eq!(
                    diff, None,
                    "{kernel} on {threads} thread(s) differs from {} on 1 thread for {shape:?}",
                    available[0]
                );
            }
        }
    }
}

#[test]
fn every_candidate_multiplies_by_the_identity_exactly() {
    // A * I == A with no rounding: each element is one product by 1 plus zeros.
    let (m, k) = (45, 70);
    let a = random_vec(m * k, 3);
    let mut eye = vec![0.0f32; k * k];
    for i in 0..k {
        eye[i * k + i] = 1.0;
    }
    for kernel in GemmKernel::available() {
        let mut c = vec![f32::NAN; m * k];
        gemm_with(
            kernel,
            1.0,
            MatRef::row_major(&a, m, k).expect("A"),
            MatRef::row_major(&eye, k, k).expect("I"),
            0.0,
            MatMut::row_major(&mut c, m, k).expect("C"),
        )
        .expect("supported kernel");
        assert_eq!(c, a, "{kernel}");
    }
}

#[test]
fn candidates_are_listed_and_the_default_is_available() {
    let available = GemmKernel::available();
    assert!(available.contains(&GemmKernel::Portable));
    assert!(available.contains(&GemmKernel::detect()));
    for kernel in GemmKernel::ALL {
        let (mr, nr) = kernel.tile();
        let blocking = kernel.blocking();
        assert_eq!(blocking.mc % mr, 0, "{kernel}: {blocking:?}");
        assert_eq!(blocking.nc % nr, 0, "{kernel}: {blocking:?}");
        if !kernel.is_supported() {
            let err = gemm_with(
                kernel,
                1.0,
                MatRef::row_major(&[1.0], 1, 1).expect("A"),
                MatRef::row_major(&[1.0], 1, 1).expect("B"),
                0.0,
                MatMut::row_major(&mut [0.0], 1, 1).expect("C"),
            )
            .expect_err("unsupported kernel");
            assert!(err.to_string().contains(kernel.name()), "{err}");
        }
    }
}

#[test]
fn the_variable_forces_each_candidate() {
    // The choice is read once per process, so each setting runs in a child process of this
    // test binary, which reports what it chose.
    for kernel in GemmKernel::available() {
        let stdout = child_output("report_the_chosen_kernel", kernel);
        assert!(
            stdout.contains(&format!(
                "chosen kernel: {kernel} (forced by VENTRAL_GEMM_KERNEL"
            )),
            "VENTRAL_GEMM_KERNEL={kernel}: {stdout}"
        );
    }
}

/// Run by [`the_variable_forces_each_candidate`] in a child process.
#[test]
#[ignore = "run in a child process by the_variable_forces_each_candidate"]
fn report_the_chosen_kernel() {
    let kernel = GemmKernel::detect();
    assert!(kernel.is_supported());
    let line = GemmKernel::describe_choice();
    assert!(
        line.starts_with(&format!("gemm kernel {kernel} (")),
        "{line}"
    );
    println!("chosen kernel: {}", &line["gemm kernel ".len()..]);
}

/// Runs the ignored test `name` of this binary in a child process with
/// `VENTRAL_GEMM_KERNEL=kernel`, returning its standard output.
fn child_output(name: &str, kernel: GemmKernel) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", name, "--include-ignored", "--nocapture"])
        .arg("--test-threads=1")
        .env("VENTRAL_GEMM_KERNEL", kernel.name())
        .output()
        .expect("child test process");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{name} with {kernel}: {stdout}");
    stdout
}

#[test]
fn convolutions_give_the_same_bits_on_every_candidate_of_the_isa() {
    // Every convolution runs on the kernel chosen for the default instruction set, so forcing
    // each candidate of that instruction set in a child process is the way to run the
    // implicit-GEMM paths on it (on AVX-512: the 16 x 16 and 12 x 32 tiles).
    let lines: Vec<(GemmKernel, String)> = GemmKernel::available()
        .into_iter()
        .filter(|k| k.isa() == ventral_kernels::Isa::detect())
        .map(|k| {
            let out = child_output("report_conv_bits", k);
            let line = out
                .lines()
                .find_map(|l| l.find("conv bits:").map(|at| l[at..].to_string()))
                .unwrap_or_else(|| panic!("no conv bits from {k}: {out}"));
            assert!(out.contains(&format!("conv kernel: {k}")), "{out}");
            (k, line)
        })
        .collect();
    for (kernel, line) in &lines {
        assert_eq!(
            line, &lines[0].1,
            "{kernel} against {}: convolution bits differ",
            lines[0].0
        );
    }
}

/// Run by [`convolutions_give_the_same_bits_on_every_candidate_of_the_isa`] in a child process:
/// prints a hash of the bits of a convolution's forward pass and both gradients.
#[test]
#[ignore = "run in a child process by convolutions_give_the_same_bits_on_every_candidate_of_the_isa"]
fn report_conv_bits() {
    use ventral_kernels::conv::{Conv2d, Conv2dParams};
    // A VGG-like 3x3 layer: 64 output channels (ragged for the 12 x 32 tile's rows), a
    // reduction of 55 * 9 = 495 (two blocks with KC = 256, three with any KC below 248) and
    // 2 images of 14 x 14.
    let (input, weight) = ([2, 55, 14, 14], [64, 55, 3, 3]);
    let conv = Conv2d::new(input, weight, Conv2dParams::default().padding(1)).expect("conv");
    let x = random_vec(input.iter().product(), 11);
    let w = random_vec(weight.iter().product(), 12);
    let dy = random_vec(2 * 64 * 14 * 14, 13);
    let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
    pool(2).install(|| {
        conv.forward(&x, &w, None, &mut y).expect("forward");
        conv.backward_input(&dy, &w, &mut dx)
            .expect("backward_input");
        conv.backward_weight(&x, &dy, &mut dw)
            .expect("backward_weight");
    });
    // FNV-1a over the bits: equal hashes for equal bits; any changed bit changes the hash
    // with overwhelming probability.
    let hash = |v: &[f32]| {
        v.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
            (h ^ u64::from(x.to_bits())).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    println!(
        "conv bits: y {:016x} dx {:016x} dw {:016x}",
        hash(&y),
        hash(&dx),
        hash(&dw)
    );
    println!("conv kernel: {}", GemmKernel::detect());
}
