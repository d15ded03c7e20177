//! Helpers shared by the kernels' test binaries: thread pools, random data, comparisons and
//! the instruction-set paths to run.
#![allow(dead_code)]

use std::io::Write;
use std::sync::OnceLock;

use rand::{RngExt, SeedableRng, rngs::StdRng};

/// A rayon pool of 1 or 2 threads, built once per test binary.
pub fn pool(threads: usize) -> &'static rayon::ThreadPool {
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

/// `len` uniform values in `[lo, hi)` from a seeded generator.
pub fn random_vec(len: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// Bit patterns of a slice, so `assert_eq!` compares NaN and -0.0 exactly.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Relative error of `got` against `want`; exact agreement (including both NaN, or equal
/// infinities) is 0, and a nonzero result where 0 is expected is infinite.
pub fn rel_err(got: f32, want: f64) -> f64 {
    let g = f64::from(got);
    if (g.is_nan() && want.is_nan()) || g == want {
        return 0.0;
    }
    if want == 0.0 || !want.is_finite() || !g.is_finite() {
        return f64::INFINITY;
    }
    ((g - want) / want).abs()
}

/// Asserts `|got - want| <= atol + rtol * |want|` elementwise, reporting the first failure.
pub fn assert_close(got: &[f32], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = f64::from(g);
        if g.is_nan() && w.is_nan() {
            continue;
        }
        assert!(
            (g - w).abs() <= atol + rtol * w.abs() || g == w,
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

/// The instruction-set paths every ISA-looping test runs: those this CPU has, best first.
///
/// `VENTRAL_REQUIRE_ISA` (a comma list of `Isa::name`s, e.g. `avx512,avx2`) names paths a run
/// must cover: if it names one this CPU lacks, this panics, so CI cannot pass while silently
/// skipping a path it means to test. A missing path that is not required is skipped with a
/// line on stderr, once per test binary, written past the test harness's output capture so it
/// shows in a passing run.
#[track_caller]
pub fn isas() -> Vec<ventral_kernels::Isa> {
    let spec = std::env::var(REQUIRE_ISA).unwrap_or_default();
    match isa_coverage(&spec, |isa| isa.is_supported()) {
        Ok(coverage) => {
            static REPORTED: std::sync::Once = std::sync::Once::new();
            REPORTED.call_once(|| {
                let binary = std::env::args().next().unwrap_or_default();
                let binary = std::path::Path::new(&binary)
                    .file_name()
                    .map_or(binary.clone(), |f| f.to_string_lossy().into_owned());
                for isa in &coverage.skipped {
                    // `eprintln!` inside a test is captured and shown only on failure.
                    let _ = writeln!(
                        std::io::stderr(),
                        "{binary}: skipped the {} path, which this CPU lacks (set {REQUIRE_ISA}={} to make that a failure)",
                        isa.name(),
                        isa.name()
                    );
                }
            });
            coverage.run
        }
        Err(message) => panic!("{message}"),
    }
}

/// The environment variable naming the instruction sets a test run must cover.
pub const REQUIRE_ISA: &str = "VENTRAL_REQUIRE_ISA";

/// Which paths a run covers: `run` (supported, best first) and `skipped` (unsupported).
#[derive(Debug, PartialEq, Eq)]
pub struct IsaCoverage {
    /// Paths this CPU has.
    pub run: Vec<ventral_kernels::Isa>,
    /// Paths this CPU lacks and the run does not require.
    pub skipped: Vec<ventral_kernels::Isa>,
}

/// Splits every path into run and skipped given `supported`, or an error naming each path
/// `spec` (a comma list of names, blanks ignored) requires that `supported` rejects, or an
/// unknown name.
pub fn isa_coverage(
    spec: &str,
    supported: impl Fn(ventral_kernels::Isa) -> bool,
) -> Result<IsaCoverage, String> {
    use ventral_kernels::Isa;
    let all = [Isa::Avx512, Isa::Avx2Fma, Isa::Portable];
    let mut required = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match all.iter().find(|isa| isa.name().eq_ignore_ascii_case(name)) {
            Some(&isa) => required.push(isa),
            None => {
                return Err(format!(
                    "{REQUIRE_ISA}={spec:?}: unknown instruction set {name:?} (known: avx512, avx2, portable)"
                ));
            }
        }
    }
    let missing: Vec<&str> = required
        .iter()
        .filter(|&&isa| !supported(isa))
        .map(|isa| isa.name())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{REQUIRE_ISA}={spec:?} requires the {} path(s), but this CPU lacks them: the tests would skip them",
            missing.join(", ")
        ));
    }
    let (run, skipped): (Vec<Isa>, Vec<Isa>) = all.into_iter().partition(|&isa| supported(isa));
    Ok(IsaCoverage { run, skipped })
}

/// Asserts that `result` is the error variant named `variant` (e.g. `"ShapeMismatch"`) whose
/// message contains `needle`, and returns it.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, ventral_kernels::KernelError>,
    variant: &str,
    needle: &str,
) -> ventral_kernels::KernelError {
    match result {
        Err(err) => {
            let (debug, message) = (format!("{err:?}"), err.to_string());
            assert!(
                debug.starts_with(&format!("{variant} {{")) && message.contains(needle),
                "expected a {variant} containing {needle:?}, got {debug}: {message}"
            );
            err
        }
        Ok(value) => panic!("expected a {variant} containing {needle:?}, got Ok({value:?})"),
    }
}
