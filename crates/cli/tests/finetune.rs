//! Adapting and fine-tuning through the binary: ResNet-20 with one input channel on
//! Fashion-MNIST (and the commands that rebuild it from config.json), the fine-tuning
//! acceptance of issue 17 (LeNet-5 on digits 0–4, head replaced, convolutions frozen, one
//! epoch on digits 5–9), resuming a frozen run, and every bad value of the new flags.

mod common;

use std::path::Path;

use common::{assert_one_line_error, data_dir, run, run_ok, scratch};
use ventral_nn::checkpoint::{self, StateDict};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The `key` field of every record of `metrics.jsonl` of `kind`.
fn metric(dir: &Path, kind: &str, key: &str) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == kind)
        .map(|v| v[key].as_f64().unwrap())
        .collect()
}

fn load(p: &Path) -> StateDict {
    checkpoint::load(p).unwrap()
}

#[test]
fn resnet20_with_one_input_channel_trains_on_fashion_mnist() {
    let dir = scratch("finetune-resnet20");
    let fashion = data_dir("fashion-mnist");
    let out = dir.join("run");
    let base = [
        "train",
        "--model",
        "resnet20",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        path(&fashion),
        "--limit-train",
        "96",
        "--limit-test",
        "32",
        "--batch-size",
        "32",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        path(&out),
    ];
    // Without the flag: one line that names it.
    let refused = run(&base);
    assert_one_line_error(
        &refused,
        &["built for 3x32x32", "1x28x28", "--in-channels 1"],
    );
    let mut args = base.to_vec();
    args.extend(["--in-channels", "1", "--overwrite"]);
    run_ok(&args);
    // 96 images in batches of 32: three steps.
    assert_eq!(metric(&out, "epoch", "step"), [3.0]);
    let last = load(&out.join("last.safetensors"));
    assert_eq!(last.get("conv1.weight").unwrap().shape(), [16, 1, 3, 3]);
    assert_eq!(last.get("fc.weight").unwrap().shape(), [10, 64]);
    let weights = out.join("last.safetensors");

    // summary, eval and predict rebuild the same one-channel model from config.json.
    let config = out.join("config.json");
    let summary = run_ok(&["summary", "--config", path(&config)]);
    let summary = String::from_utf8_lossy(&summary.stdout);
    assert!(
        summary.contains("input [N, 1, 28, 28]") && summary.contains("Conv2d(1→16"),
        "{summary}"
    );
    let eval = run_ok(&[
        "eval",
        "--model",
        "resnet20",
        "--weights",
        path(&weights),
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        path(&fashion),
    ]);
    let eval = String::from_utf8_lossy(&eval.stdout);
    assert!(
        eval.starts_with("resnet20 on fashion-mnist test: accuracy"),
        "{eval}"
    );
    let image = dir.join("x.pgm");
    let mut pgm = b"P5\n28 28\n255\n".to_vec();
    pgm.extend((0..28 * 28).map(|i| (i % 251) as u8));
    std::fs::write(&image, pgm).unwrap();
    let predicted = run_ok(&[
        "predict",
        "--model",
        "resnet20",
        "--weights",
        path(&weights),
        "--json",
        path(&image),
    ]);
    let line: serde_json::Value =
        serde_json::from_slice(predicted.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        line["probabilities"].as_array().map(Vec::len),
        Some(10),
        "{line}"
    );
    let filters = run_ok(&[
        "visualize",
        "filters",
        "--model",
        "resnet20",
        "--weights",
        path(&weights),
        "--out",
        path(&dir.join("filters.png")),
    ]);
    let filters = String::from_utf8_lossy(&filters.stdout);
    assert!(
        filters.contains("16 filters of `conv1.weight` (1x3x3)"),
        "{filters}"
    );
}

/// Issue 17's acceptance: LeNet-5 trained on digits 0–4 (one epoch, a 10-way head as the
/// zoo builds it), then the head replaced by a 5-way one (`--num-classes 5 --init-partial`),
/// both convolutions frozen, one epoch on digits 5–9: at least 97 % on the 5–9 test images,
/// and the frozen tensors bit-identical to the ones it started from.
#[test]
fn lenet5_fine_tuned_on_digits_5_to_9_with_frozen_convolutions() {
    let dir = scratch("finetune-acceptance");
    let mnist = data_dir("mnist");
    let (first, second) = (dir.join("first"), dir.join("second"));
    let common = [
        "--data-dir",
        path(&mnist),
        "--epochs",
        "1",
        "--lr",
        "0.02",
        "--quiet",
    ];
    let mut args = vec![
        "train",
        "--classes",
        "0-4",
        "--num-classes",
        "10",
        "--out",
        path(&first),
    ];
    args.extend(common);
    run_ok(&args);
    let start = first.join("best.safetensors");
    let mut args = vec![
        "train",
        "--classes",
        "5-9",
        "--num-classes",
        "5",
        "--init",
        path(&start),
        "--init-partial",
        "--freeze",
        "conv1",
        "--freeze",
        "conv2",
        "--out",
        path(&second),
    ];
    args.extend(common);
    let out = run_ok(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "loaded 8; skipped 0; mismatched 2 (fc3.weight [10, 84] in the file, [5, 84] in the \
             model, fc3.bias [10] in the file, [5] in the model); missing 0"
        ),
        "{stdout}"
    );
    let accuracy = metric(&second, "epoch", "test_accuracy");
    assert_eq!(accuracy.len(), 1);
    assert!(accuracy[0] >= 0.97, "accuracy on digits 5-9: {accuracy:?}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(second.join("config.json")).unwrap())
            .unwrap();
    // 4,861 of MNIST's 10,000 test images are digits 5 to 9 (892 + 958 + 1,028 + 974 +
    // 1,009, from the labels file).
    assert_eq!(config["test_samples"], 4861);
    assert_eq!(
        config["class_names"],
        serde_json::json!(["5", "6", "7", "8", "9"])
    );

    let (before, after) = (load(&start), load(&second.join("last.safetensors")));
    for key in ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"] {
        assert_eq!(after.get(key), before.get(key), "{key} moved");
    }
    for key in ["fc1.weight", "fc2.weight"] {
        assert_ne!(after.get(key), before.get(key), "{key} did not train");
    }
    // The frozen state has no optimizer buffers for the four frozen tensors.
    let state = load(&second.join("train_state.safetensors"));
    let buffers: Vec<&str> = state
        .keys()
        .filter(|k| k.starts_with("optimizer.momentum_buffer."))
        .collect();
    assert_eq!(
        buffers,
        (4..10)
            .map(|i| format!("optimizer.momentum_buffer.{i}"))
            .collect::<Vec<_>>()
    );
}

/// A frozen, partially loaded run stopped mid-epoch resumes to the same bits as one never
/// stopped; its flags cannot change on resume.
#[test]
fn a_frozen_run_resumes_bit_identically() {
    let dir = scratch("finetune-resume");
    let mnist = data_dir("mnist");
    let first = dir.join("first");
    let base = [
        "train",
        "--data-dir",
        path(&mnist),
        "--limit-train",
        "640",
        "--limit-test",
        "100",
        "--epochs",
        "2",
        "--quiet",
    ];
    let mut args = base.to_vec();
    args.extend(["--out", path(&first)]);
    run_ok(&args);
    let init = first.join("last.safetensors");
    let tune = |out: &Path, extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend([
            "--classes",
            "1,0",
            "--init",
            path(&init),
            "--init-partial",
            "--freeze",
            "conv1,fc1",
            "--out",
            path(out),
        ]);
        args.extend(extra);
        run(&args)
    };
    let (whole, stopped) = (dir.join("whole"), dir.join("stopped"));
    assert!(tune(&whole, &[]).status.success());
    assert_eq!(
        tune(&stopped, &["--stop-after-steps", "3"]).status.code(),
        Some(130)
    );
    let conflict = run(&["train", "--resume", path(&stopped), "--freeze", "conv1"]);
    assert_one_line_error(&conflict, &["--freeze conv1 conflicts with the run"]);
    run_ok(&["train", "--resume", path(&stopped), "--quiet"]);
    let (a, b) = (
        load(&whole.join("last.safetensors")),
        load(&stopped.join("last.safetensors")),
    );
    assert_eq!(a, b);
    assert_eq!(a.get("conv1.weight"), load(&init).get("conv1.weight"));
    assert_eq!(a.get("fc3.weight").unwrap().shape(), [2, 84]);
}

#[test]
fn bad_values_of_the_new_flags_fail_in_one_line_and_leave_the_run_alone() {
    let dir = scratch("finetune-bad");
    let mnist = data_dir("mnist");
    let out = dir.join("run");
    let base = [
        "train",
        "--data-dir",
        path(&mnist),
        "--limit-train",
        "128",
        "--limit-test",
        "64",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        path(&out),
    ];
    run_ok(&base);
    let config = std::fs::read(out.join("config.json")).unwrap();
    let weights = std::fs::read(out.join("last.safetensors")).unwrap();
    let init = dir.join("init.safetensors");
    std::fs::write(&init, &weights).unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--num-classes", "0"], &["--num-classes", "0"]),
        (&["--in-channels", "0"], &["--in-channels", "0"]),
        (
            &["--num-classes", "3"],
            &[
                "--num-classes 3 is fewer than the 10 classes of mnist",
                "--classes",
            ],
        ),
        (
            &["--freeze", "features"],
            &[
                "--freeze features",
                "`features` matches no parameter or buffer",
                "conv1, conv2, fc1, fc2, fc3",
            ],
        ),
        (&["--freeze", "conv"], &["`conv` matches no parameter"]),
        (&["--classes", "4-1"], &["--classes", "a range goes up"]),
        (
            &["--classes", "0,12"],
            &["--classes", "class 12 is outside the dataset's 0..10"],
        ),
        (&["--classes", "1,1"], &["class 1 is listed twice"]),
        (&["--classes", "x"], &["`x` is not a class number"]),
        (&["--init-partial"], &["--init"]),
        (
            &["--num-classes", "12", "--init", path(&init)],
            &["does not fit model lenet5", "--init-partial", "fc3.weight"],
        ),
        (
            &["--in-channels", "3"],
            &["cannot take mnist's samples of 1x28x28", "conv1"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = base.to_vec();
        args.push("--overwrite");
        args.extend(*extra);
        assert_one_line_error(&run(&args), needles);
        assert_eq!(
            std::fs::read(out.join("config.json")).unwrap(),
            config,
            "{extra:?}"
        );
        assert_eq!(
            std::fs::read(out.join("last.safetensors")).unwrap(),
            weights,
            "{extra:?}"
        );
    }
}

/// `summary --in-channels` shows the rebuilt stem; an input too small for the model's pools
/// is one line naming the layer where it runs out.
#[test]
fn summary_rebuilds_the_stem_and_names_the_layer_an_input_is_too_small_for() {
    let out = run_ok(&[
        "summary",
        "--model",
        "resnet18",
        "--in-channels",
        "1",
        "--input",
        "1x64x64",
        "--num-classes",
        "5",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("ResNet18: input [N, 1, 64, 64] → output [N, 5]")
            && table.contains("Conv2d(1→64, 7x7"),
        "{table}"
    );
    let small = run(&[
        "summary",
        "--model",
        "vgg11",
        "--in-channels",
        "1",
        "--input",
        "1x28x28",
    ]);
    assert_one_line_error(&small, &["features.20 MaxPool2d", "output would be empty"]);
}
