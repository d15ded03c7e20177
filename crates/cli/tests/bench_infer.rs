//! `ventral bench infer`, run through the binary: one JSON line per model with its input
//! size and parameter count (which must match the zoo's), and one-line errors for an unknown
//! model and for `--batch` on another bench. No assertion is made on the times themselves.

mod common;

use common::{assert_one_line_error, run, run_ok};
use serde_json::Value;

#[test]
fn infer_reports_each_model_at_its_input_size() {
    let out = run_ok(&[
        "bench",
        "infer",
        "--model",
        "lenet5",
        "--model",
        "resnet20",
        "--batch",
        "3",
        "--reps",
        "7",
        "--threads",
        "1",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "one JSON line per model:\n{text}");
    // Parameter counts of ../shared/reference: LeNet-5 (ReLU, 10 classes) and ResNet-20.
    for (row, (model, input, params)) in rows.iter().zip([
        ("lenet5", [1, 28, 28], 61_706),
        ("resnet20", [3, 32, 32], 269_722),
    ]) {
        assert_eq!(row["kernel"], "infer", "{row}");
        assert_eq!(row["model"], model, "{row}");
        assert_eq!(row["batch"], 3, "{row}");
        assert_eq!(row["input"], serde_json::json!(input), "{row}");
        assert_eq!(row["parameters"], params, "{row}");
        let ips = row["images_per_sec"].as_f64().unwrap();
        let ms = row["ms_per_batch"].as_f64().unwrap();
        assert!(ips > 0.0 && ms > 0.0, "{row}");
    }
}

#[test]
fn infer_refuses_unknown_models_and_batch_elsewhere() {
    let out = run(&["bench", "infer", "--model", "resnet9000"]);
    assert_one_line_error(&out, &["unknown model `resnet9000`"]);
    let out = run(&["bench", "infer", "--model", "perceptron"]);
    assert_one_line_error(&out, &["perceptron"]);
    let out = run(&["bench", "train", "--batch", "4"]);
    assert_one_line_error(&out, &["--batch applies to `bench infer` only"]);
}
