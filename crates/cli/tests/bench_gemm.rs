//! `ventral bench gemm --candidates`, run through the binary: one JSON line per micro-kernel
//! the CPU runs timed alone, then one per shape and micro-kernel, with exactly the chosen
//! kernel marked, and a one-line error for the flag on another bench. No assertion is made
//! on the speeds themselves.

mod common;

use common::{assert_one_line_error, run, run_ok};
use serde_json::Value;
use ventral_kernels::gemm::GemmKernel;

#[test]
fn candidates_are_timed_side_by_side_with_the_choice_marked() {
    let out = run_ok(&[
        "bench",
        "gemm",
        "--candidates",
        "--sizes",
        "8,33x17x65",
        "--reps",
        "7",
        "--threads",
        "1",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let all: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let available = GemmKernel::available();
    let want: Vec<&str> = available.iter().map(|k| k.name()).collect();
    let (alone, rows): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|row| row["kernel"] == "gemm_kernel_alone");
    // Each micro-kernel alone, once, in the candidates' order, the chosen one marked.
    let names: Vec<&str> = alone
        .iter()
        .map(|row| row["candidate"].as_str().unwrap())
        .collect();
    assert_eq!(names, want, "the kernels alone:\n{text}");
    for row in &alone {
        assert_eq!(
            row["chosen"] == true,
            row["candidate"] == GemmKernel::detect().name(),
            "{row}"
        );
        assert_eq!(row["threads"], 1, "{row}");
        assert!(row["gflops"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["peak_fraction"].as_f64().unwrap() > 0.0, "{row}");
    }
    assert_eq!(
        rows.len(),
        2 * available.len(),
        "a line per shape and candidate:\n{text}"
    );
    for (shape, lines) in [(8, 8, 8), (33, 17, 65)]
        .iter()
        .zip(rows.chunks(available.len()))
    {
        let names: Vec<&str> = lines
            .iter()
            .map(|row| row["candidate"].as_str().unwrap())
            .collect();
        assert_eq!(names, want, "{shape:?}");
        let chosen: Vec<&str> = lines
            .iter()
            .filter(|row| row["chosen"] == true)
            .map(|row| row["candidate"].as_str().unwrap())
            .collect();
        assert_eq!(chosen, [GemmKernel::detect().name()], "{shape:?}");
        for row in lines {
            assert_eq!(row["kernel"], "gemm_candidate", "{row}");
            assert_eq!(
                (row["m"].as_u64(), row["k"].as_u64(), row["n"].as_u64()),
                (Some(shape.0), Some(shape.1), Some(shape.2)),
                "{row}"
            );
            assert!(row["gflops"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
}

#[test]
fn candidates_is_for_bench_gemm_only() {
    let out = run(&["bench", "conv", "--candidates"]);
    assert_one_line_error(&out, &["--candidates applies to `bench gemm` only"]);
}
