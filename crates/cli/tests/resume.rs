//! `--resume`, Ctrl-C and the NaN guard, on a tiny LeNet-5 run (512 MNIST images, 8 steps
//! per epoch): a run that is stopped and resumed ends with the very bytes of one that never
//! stopped.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{assert_one_line_error, bytes, scratch, tiny_train_args, train, train_ok, ventral};
use ventral_nn::checkpoint;

fn saved_step(dir: &std::path::Path) -> i64 {
    let state = checkpoint::load(&dir.join("train_state.safetensors")).unwrap();
    state.get("step").unwrap().as_i64().unwrap()[0]
}

fn epoch_records(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"kind\":\"epoch\""))
        .count()
}

#[test]
fn one_epoch_then_resume_to_two_equals_two_epochs() {
    // A constant learning rate: the schedule does not depend on the number of epochs, so
    // extending the run with --epochs changes nothing.
    let straight = scratch("resume-straight-const");
    train_ok(&straight, &["--epochs", "2", "--schedule", "none"]);
    let split = scratch("resume-split-const");
    train_ok(&split, &["--epochs", "1", "--schedule", "none"]);
    assert_eq!(saved_step(&split), 8);
    let out = common::run_ok(&[
        "train",
        "--resume",
        split.to_str().unwrap(),
        "--epochs",
        "2",
        "--quiet",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("epoch   2/2"));
    assert_eq!(
        bytes(&straight, "last.safetensors"),
        bytes(&split, "last.safetensors")
    );
    assert_eq!(
        bytes(&straight, "best.safetensors"),
        bytes(&split, "best.safetensors")
    );
    assert_eq!(epoch_records(&split), 2);
    assert_eq!(saved_step(&split), 16);
}

#[test]
fn stopped_mid_epoch_and_resumed_equals_uninterrupted() {
    // The default cosine schedule over 2 epochs; stopped after 11 of the 16 steps, i.e. in
    // the middle of the second epoch.
    let straight = scratch("resume-straight-cos");
    train_ok(&straight, &["--epochs", "2"]);
    let stopped = scratch("resume-stopped-cos");
    let out = train(&stopped, &["--epochs", "2", "--stop-after-steps", "11"]);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_one_line_error(&out, &["interrupted after step 11", "--resume"]);
    assert_eq!(saved_step(&stopped), 11);
    let dir = stopped.to_str().unwrap();
    // Repeating a flag with the run's own value is fine; a different value is not.
    let conflict = common::run(&["train", "--resume", dir, "--lr", "0.1"]);
    assert_one_line_error(&conflict, &["--lr 0.1 conflicts", "0.05"]);
    let conflict = common::run(&["train", "--resume", dir, "--model", "mlp"]);
    assert_one_line_error(&conflict, &["--model mlp conflicts", "lenet5"]);
    let conflict = common::run(&["train", "--resume", dir, "--out", "/tmp/elsewhere"]);
    assert_one_line_error(&conflict, &["--out"]);
    common::run_ok(&["train", "--resume", dir, "--lr", "0.05", "--quiet"]);
    assert_eq!(
        bytes(&straight, "last.safetensors"),
        bytes(&stopped, "last.safetensors")
    );
    assert_eq!(
        bytes(&straight, "best.safetensors"),
        bytes(&stopped, "best.safetensors")
    );
    assert_eq!(epoch_records(&stopped), 2);
    // A finished run says how to go further.
    let done = common::run(&["train", "--resume", dir]);
    assert_one_line_error(&done, &["already finished 2 epochs", "--epochs"]);
}

#[test]
fn ctrl_c_saves_and_exits_130_and_the_state_resumes() {
    let dir = scratch("ctrl-c");
    let mut args = tiny_train_args(&dir);
    args.extend(["--epochs", "1000", "--limit-train", "256"].map(String::from));
    let mut child = ventral()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way (the first epoch's line), then press Ctrl-C.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("an epoch line").unwrap();
    assert!(first.contains("epoch"), "{first}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in lines {}
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted after step"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let step = saved_step(&dir);
    assert!(step >= 4, "step {step}");
    assert!(dir.join("last.safetensors").is_file());

    // The saved state resumes: two more steps, then stop again.
    let out = ventral()
        .args([
            "train",
            "--resume",
            dir.to_str().unwrap(),
            "--stop-after-steps",
            "2",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(saved_step(&dir), step + 2);
}

#[test]
fn a_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint() {
    // One good epoch on 128 images, then a run from its weights at a learning rate of 1e6
    // over 512 images: the loss overflows within the epoch (at step 3 on this data).
    let dir = scratch("nan");
    train_ok(&dir, &["--epochs", "1", "--limit-train", "128"]);
    let good = bytes(&dir, "last.safetensors");
    let init = dir.join("last.safetensors");
    // The new run replaces the finished one (--overwrite); its training state is saved
    // before its first step, from the --init weights, and the failure leaves it so.
    let out = train(
        &dir,
        &[
            "--epochs",
            "1",
            "--lr",
            "1e6",
            "--overwrite",
            "--init",
            init.to_str().unwrap(),
        ],
    );
    let line = assert_one_line_error(&out, &["the loss became", "at step", "is kept", "--lr"]);
    assert!(line.contains("last.safetensors"), "{line}");
    assert_eq!(bytes(&dir, "last.safetensors"), good);
    let state = checkpoint::load(&dir.join("train_state.safetensors")).unwrap();
    let weights = checkpoint::load(&init).unwrap();
    assert_eq!(saved_step(&dir), 0);
    for (name, record) in weights.iter() {
        assert_eq!(state.get(&format!("model.{name}")), Some(record), "{name}");
    }
    let state = bytes(&dir, "train_state.safetensors");

    // Anomaly mode names the op and the layer where the first inf or NaN appeared.
    let out = train(
        &dir,
        &[
            "--epochs",
            "1",
            "--lr",
            "1e6",
            "--anomaly",
            "--overwrite",
            "--init",
            init.to_str().unwrap(),
        ],
    );
    assert_one_line_error(&out, &["at step", "anomaly", "Conv2d"]);
    assert_eq!(bytes(&dir, "last.safetensors"), good);
    assert_eq!(bytes(&dir, "train_state.safetensors"), state);
}
