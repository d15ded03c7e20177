//! `ventral bench train --profile`, run through the binary: the rows it reports and that
//! they account for the whole step. No assertion is made on the times themselves.

mod common;

use common::{assert_one_line_error, run, run_ok};
use serde_json::Value;

/// The rows `--profile` reports, in order (`crates/cli/src/bench/train_profile.rs`).
const KINDS: [&str; 15] = [
    "conv_forward",
    "conv_input_grad",
    "conv_weight_grad",
    "batch_norm_forward",
    "batch_norm_backward",
    "relu_forward",
    "relu_backward",
    "batch_norm_relu_forward",
    "batch_norm_relu_backward",
    "pooling",
    "linear_matmul",
    "loss",
    "optimizer",
    "other_ops",
    "other",
];

#[test]
fn lenet5_profile_accounts_for_the_whole_step() {
    let out = run_ok(&[
        "bench",
        "train",
        "--model",
        "lenet5",
        "--profile",
        "--reps",
        "7",
        "--threads",
        "1",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line per model:\n{text}");
    let v: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["kernel"], "train_profile", "{v}");
    assert_eq!(v["model"], "lenet5", "{v}");
    let kinds = v["kinds"].as_array().unwrap();
    let names: Vec<&str> = kinds.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(names, KINDS, "{v}");
    let percent: Vec<f64> = kinds
        .iter()
        .map(|k| k["percent"].as_f64().unwrap())
        .collect();
    assert!(percent.iter().all(|&p| p >= 0.0), "{v}");
    // Every row is a share of the step's wall time, rounded to 0.01 %: 15 roundings move
    // the sum by at most 0.075.
    let sum: f64 = percent.iter().sum();
    assert!(
        (sum - 100.0).abs() <= 0.5,
        "percentages add up to {sum}: {v}"
    );
    // The ops LeNet-5 runs land in their rows: the raw list names each op kind it uses,
    // and there is no batch norm in LeNet-5.
    let ops: Vec<(&str, &str)> = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["op"].as_str().unwrap(), o["pass"].as_str().unwrap()))
        .collect();
    for op in [
        ("conv2d", "forward"),
        ("conv2d.input_grad", "backward"),
        ("conv2d.weight_grad", "backward"),
        ("relu", "forward"),
        ("relu", "backward"),
        ("max_pool2d", "forward"),
        ("matmul", "backward"),
        ("log_softmax", "forward"),
        ("optimizer", "other"),
    ] {
        assert!(ops.contains(&op), "{op:?} missing: {v}");
    }
    assert!(!ops.iter().any(|o| o.0 == "batch_norm"), "{v}");
    // LeNet-5 has two convolutions and three linear layers (one matmul each) per step.
    let calls = |op: &str, pass: &str| {
        v["ops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["op"] == op && o["pass"] == pass)
            .map(|o| o["calls_per_step"].as_f64().unwrap())
    };
    assert_eq!(calls("conv2d", "forward"), Some(2.0), "{v}");
    assert_eq!(calls("matmul", "forward"), Some(3.0), "{v}");
    // The first convolution's input (the images) needs no gradient.
    assert_eq!(calls("conv2d.input_grad", "backward"), Some(1.0), "{v}");
}

#[test]
fn profile_is_for_bench_train_and_infer_only() {
    let out = run(&["bench", "gemm", "--sizes", "8", "--profile"]);
    assert_one_line_error(&out, &["--profile", "bench train", "bench infer"]);
}

#[test]
fn inference_profile_has_forward_rows_only() {
    let out = run_ok(&[
        "bench",
        "infer",
        "--model",
        "lenet5",
        "--batch",
        "4",
        "--profile",
        "--reps",
        "7",
        "--threads",
        "1",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["kernel"], "infer_profile", "{v}");
    assert_eq!(
        (v["model"].as_str(), v["batch"].as_u64()),
        (Some("lenet5"), Some(4)),
        "{v}"
    );
    let ops = v["ops"].as_array().unwrap();
    // Inference records forward passes only, and every layer kind LeNet-5 has.
    assert!(ops.iter().all(|o| o["pass"] == "forward"), "{v}");
    for op in ["conv2d", "max_pool2d", "matmul"] {
        assert!(ops.iter().any(|o| o["op"] == op), "{op} missing: {v}");
    }
    let ms = |kind: &str| {
        v["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kind"] == kind)
            .unwrap()["ms_per_step"]
            .as_f64()
            .unwrap()
    };
    assert!(ms("conv_forward") > 0.0 && ms("pooling") > 0.0, "{v}");
    for kind in ["conv_input_grad", "conv_weight_grad", "optimizer", "loss"] {
        assert_eq!(ms(kind), 0.0, "{kind}: {v}");
    }
}
