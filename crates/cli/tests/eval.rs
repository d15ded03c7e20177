//! `ventral eval`: accuracy table, JSON and the confusion-matrix PNG.

mod common;

use common::{run_ok, scratch, train_ok};

#[test]
fn eval_prints_accuracy_and_draws_the_confusion_matrix() {
    let dir = scratch("eval");
    train_ok(&dir, &[]);
    let weights = dir.join("best.safetensors");
    let plot = dir.join("confusion.png");
    let out = run_ok(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Every test sample lands in exactly one cell: the matrix sums to MNIST's 10,000.
    let total: u64 = v["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10_000);
    let accuracy = v["accuracy"].as_f64().unwrap();
    let diagonal: u64 = (0..10)
        .map(|c| v["confusion"][c][c].as_u64().unwrap())
        .sum();
    assert!((accuracy - diagonal as f64 / 10_000.0).abs() < 1e-12);
    let png = std::fs::read(&plot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}
