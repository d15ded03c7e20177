//! Helpers for the tests that run the `ventral` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary, with `RUST_BACKTRACE=1` so that a panic or an error printed with `{:?}` would
/// show its backtrace (and fail the one-line checks). `VENTRAL_TEST_BIN` runs the tests
/// against another build instead (to show that a regression test fails on an older one).
pub fn ventral() -> Command {
    let bin = std::env::var_os("VENTRAL_TEST_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ventral").into());
    let mut cmd = Command::new(bin);
    cmd.env("RUST_BACKTRACE", "1");
    cmd
}

/// Runs `ventral ARGS…` to completion.
pub fn run(args: &[&str]) -> Output {
    ventral()
        .args(args)
        .output()
        .expect("the ventral binary runs")
}

/// Runs `ventral ARGS…` and fails the test with its output unless it exits 0.
pub fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "ventral {args:?} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The repository's `data/<name>`.
pub fn data_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

/// A fresh, empty scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ventral-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Asserts that `out` is a clean failure: a non-zero exit, exactly one line on stderr that
/// starts with `ventral: ` and contains every one of `needles`, and no panic or backtrace.
#[track_caller]
pub fn assert_one_line_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected a failure, got success; stderr:\n{stderr}"
    );
    assert_ne!(
        out.status.code(),
        Some(101),
        "exit code 101 means a panic:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    let line = lines[0];
    assert!(line.starts_with("ventral: "), "{line}");
    for bad in [
        "panicked",
        "backtrace",
        "internal error",
        "Caused by",
        "Stack",
    ] {
        assert!(!line.contains(bad), "{line}");
    }
    for needle in needles {
        assert!(line.contains(needle), "expected `{needle}` in: {line}");
    }
    line.to_string()
}

/// The small, fast LeNet-5 run the tests share: 200 MNIST test images (the callers add
/// `--limit-train`).
pub fn tiny_train_args(out: &Path) -> Vec<String> {
    [
        "train",
        "--limit-test",
        "200",
        "--batch-size",
        "64",
        "--quiet",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

/// Runs the tiny training run with `extra` flags (512 training images unless `extra` says
/// otherwise).
pub fn train(out: &Path, extra: &[&str]) -> Output {
    let mut args = tiny_train_args(out);
    if !extra.contains(&"--limit-train") {
        args.extend(["--limit-train".to_string(), "512".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    ventral()
        .args(&args)
        .output()
        .expect("the ventral binary runs")
}

/// As [`train`], failing the test unless it exits 0.
pub fn train_ok(out: &Path, extra: &[&str]) -> Output {
    let result = train(out, extra);
    assert!(
        result.status.success(),
        "train {extra:?} failed ({:?}):\n{}\n{}",
        result.status,
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    result
}

/// The bytes of `dir/name`.
pub fn bytes(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}
