//! `gradcheck`, `data verify`, `forward`, `predict` and `graph`, run through the binary.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{assert_one_line_error, data_dir, run, run_ok, scratch, train_ok};
use serde_json::Value;
use ventral_nn::checkpoint::{self, StateDict, TensorData, TensorRecord};
use ventral_nn::data::{Dataset, Split, load};

/// A LeNet-5 trained for one epoch on 512 images: weights and its run directory.
fn trained() -> &'static PathBuf {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("tools-run");
        train_ok(&dir, &["--epochs", "1"]);
        dir
    })
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn gradcheck_passes_for_every_op_and_layer() {
    let out = run_ok(&["gradcheck"]);
    let text = stdout(&out);
    for name in [
        "conv2d",
        "matmul",
        "batch_norm",
        "cross_entropy",
        "concat",
        "shortcut_option_a",
        "Linear",
        "Conv2d",
        "Dropout",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name) && l.ends_with("ok")),
            "{name}:\n{text}"
        );
    }
    assert!(text.contains("gradient checks passed"), "{text}");
    let out = run_ok(&["gradcheck", "--op", "relu", "--op", "BatchNorm2d", "--json"]);
    let records: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["op"], "relu");
    assert_eq!(records[1]["kind"], "layer");
    assert!(
        records
            .iter()
            .all(|r| r["passed"] == true && r["max_rel_error"].as_f64().unwrap() < 1e-2)
    );
}

#[test]
fn data_verify_accepts_the_shipped_files_and_rejects_a_damaged_one() {
    let out = run_ok(&["data", "verify", "digits"]);
    let text = stdout(&out);
    assert!(
        text.contains("sha256 matches the shipped file") && text.contains("1797 samples"),
        "{text}"
    );
    let out = run_ok(&["data", "verify", "mnist", "--json"]);
    let records: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4);
    assert!(
        records
            .iter()
            .all(|r| r["ok"] == true && r["sha256_matches"] == true),
        "{records:?}"
    );
    assert_eq!(records[0]["content"], "60000 images of 28x28");

    // One flipped byte inside the gzip stream: the checksum differs and the reader fails.
    let dir = scratch("verify-damaged");
    let mut digits = std::fs::read(data_dir("digits").join("digits.csv.gz")).unwrap();
    let middle = digits.len() / 2;
    digits[middle] ^= 0xff;
    std::fs::write(dir.join("digits.csv.gz"), digits).unwrap();
    let out = run(&[
        "data",
        "verify",
        "digits",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(stdout(&out).starts_with("FAIL"), "{}", stdout(&out));
    assert_one_line_error(&out, &["1 of 1 files of digits", "failed verification"]);
    let empty = scratch("verify-empty");
    let out = run(&[
        "data",
        "verify",
        "mnist",
        "--data-dir",
        empty.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, &["4 of 4 files of mnist"]);
    assert!(stdout(&out).contains("missing"));
}

/// The first `n` MNIST test images, normalised with the run's statistics, as [n, 1, 28, 28],
/// plus their raw bytes.
fn test_images(run: &Path, n: usize) -> (Vec<f32>, Vec<Vec<u8>>) {
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    let mean = config["normalize"]["mean"][0].as_f64().unwrap() as f32;
    let std = config["normalize"]["std"][0].as_f64().unwrap() as f32;
    let test = load("mnist", &data_dir("mnist"), Split::Test).unwrap();
    let mut normalised = Vec::new();
    let mut raw = Vec::new();
    for i in 0..n {
        let sample = test.get(i).data.to_vec();
        raw.push(sample.iter().map(|&v| (v * 255.0).round() as u8).collect());
        normalised.extend(sample.iter().map(|&v| (v - mean) / std));
    }
    (normalised, raw)
}

fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn write_png(path: &Path, width: u32, height: u32, grey: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .unwrap()
        .write_image_data(grey)
        .unwrap();
}

#[test]
fn forward_and_predict_agree_on_mnist_digits() {
    let run_dir = trained();
    let weights = run_dir.join("best.safetensors");
    let dir = scratch("infer");
    let (x, raw) = test_images(run_dir, 2);
    let mut input = StateDict::new();
    input.insert(
        "input",
        TensorRecord::new("input", vec![2, 1, 28, 28], TensorData::F32(x)).unwrap(),
    );
    let input_path = dir.join("in.safetensors");
    checkpoint::save(&input_path, &input).unwrap();
    let output_path = dir.join("out.safetensors");
    run_ok(&[
        "forward",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input_path.to_str().unwrap(),
        "--output",
        output_path.to_str().unwrap(),
    ]);
    let output = checkpoint::load(&output_path).unwrap();
    let logits = output.get("output").unwrap();
    assert_eq!(logits.shape(), &[2, 10]);
    let logits = logits.as_f32().unwrap();

    // The same digits as a 28x28 PGM and as a 28x28 PNG: predict preprocesses them exactly as
    // training did (statistics from the config.json beside the weights), so its
    // probabilities are the softmax of forward's logits.
    let pgm = dir.join("digit0.pgm");
    let mut bytes = b"P5\n# MNIST test image 0\n28 28\n255\n".to_vec();
    bytes.extend(&raw[0]);
    std::fs::write(&pgm, bytes).unwrap();
    let png_path = dir.join("digit1.png");
    write_png(&png_path, 28, 28, &raw[1]);
    let out = run_ok(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        "--json",
        pgm.to_str().unwrap(),
        png_path.to_str().unwrap(),
    ]);
    let records: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    for (record, row) in records.iter().zip(logits.chunks(10)) {
        let p: Vec<f32> = record["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        for (a, b) in p.iter().zip(softmax(row)) {
            assert!((a - b).abs() < 1e-5, "{p:?} vs {row:?}");
        }
    }

    // A larger, dark-on-light drawing of the first digit (nearest-neighbour upscaled 2x and
    // inverted): resized back and inverted automatically, it gets the same class.
    let mut big = vec![0u8; 56 * 56];
    for (i, v) in big.iter_mut().enumerate() {
        let (y, x) = (i / 56, i % 56);
        *v = 255 - raw[0][(y / 2) * 28 + x / 2];
    }
    let big_path = dir.join("big.png");
    write_png(&big_path, 56, 56, &big);
    let out = run_ok(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        "--json",
        big_path.to_str().unwrap(),
    ]);
    let record: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(record["class"], records[0]["class"], "{record}");
    let text = stdout(&run_ok(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        pgm.to_str().unwrap(),
    ]));
    assert!(
        text.contains("digit0.pgm: ") && text.contains("config.json"),
        "{text}"
    );

    // Not images.
    let note = dir.join("note.png");
    std::fs::write(&note, "hello").unwrap();
    let out = run(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        note.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, &["note.png", "not a PNG"]);
    let cut = dir.join("cut.pgm");
    std::fs::write(&cut, b"P5 28 28 255\n\x00\x01").unwrap();
    let out = run(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        cut.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, &["cut.pgm", "truncated"]);
    // The weights of another model.
    let out = run(&[
        "forward",
        "--model",
        "mlp",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input_path.to_str().unwrap(),
        "--output",
        output_path.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, &["does not fit model mlp"]);
    // An input of the wrong shape.
    let mut wrong = StateDict::new();
    wrong.insert(
        "input",
        TensorRecord::new("input", vec![1, 3, 8, 8], TensorData::F32(vec![0.0; 192])).unwrap(),
    );
    checkpoint::save(&input_path, &wrong).unwrap();
    let out = run(&[
        "forward",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input_path.to_str().unwrap(),
        "--output",
        output_path.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, &["cannot take an input of shape [1, 3, 8, 8]"]);
}

#[test]
fn graph_writes_dot() {
    let dir = scratch("graph");
    let path = dir.join("lenet5.dot");
    let out = run_ok(&[
        "graph",
        "--model",
        "lenet5",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(stdout(&out).contains("nodes"));
    let dot = std::fs::read_to_string(&path).unwrap();
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("conv2d") && dot.contains("grad ["), "{dot}");
    let path = dir.join("mlp.dot");
    run_ok(&[
        "graph",
        "--model",
        "mlp",
        "--input",
        "1x8x8",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(std::fs::read_to_string(&path).unwrap().contains("matmul"));
}
