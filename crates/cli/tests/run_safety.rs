//! A run is never lost, and a corrupt training state is refused whole: the training state
//! exists from the first step on, `--save-every`, plots that cannot be written, stale
//! temporary files, `--overwrite`, `forward --output` over an input, and every kind of
//! damage to `train_state.safetensors` (issue 18).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    assert_one_line_error, bytes, run, scratch, tiny_train_args, train, train_ok, ventral,
};
use ventral_nn::checkpoint::{self, StateDict, TensorData, TensorRecord};

fn saved_step(dir: &Path) -> i64 {
    let state = checkpoint::load(&dir.join("train_state.safetensors")).unwrap();
    state.get("step").unwrap().as_i64().unwrap()[0]
}

/// Killed (SIGKILL) during its first epoch, a run can be resumed, and the resumed run ends
/// with the very weights of one that was never stopped. Before, the training state was
/// first written at the end of epoch 1.
#[test]
fn a_run_killed_during_its_first_epoch_resumes_exactly() {
    let straight = scratch("killed-straight");
    let killed = scratch("killed");
    let extra = ["--epochs", "2", "--limit-train", "3200"];
    train_ok(&straight, &extra);

    let mut args = tiny_train_args(&killed);
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = ventral()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = killed.join("train_state.safetensors");
    let start = Instant::now();
    while !state.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before saving any training state"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no training state"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !killed.join("best.safetensors").exists(),
        "killed before the end of epoch 1"
    );
    let resumed = run(&["train", "--resume", killed.to_str().unwrap(), "--quiet"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(
        bytes(&killed, "last.safetensors"),
        bytes(&straight, "last.safetensors")
    );
}

/// `--save-every N` is accepted and may change on `--resume` (when the trainer saves is
/// tested step by step in ventral-train's `tests/fit.rs`, through its checkpoint events).
#[test]
fn save_every_is_a_flag_a_resume_may_change() {
    let dir = scratch("save-every");
    let out = train(
        &dir,
        &[
            "--epochs",
            "2",
            "--save-every",
            "3",
            "--stop-after-steps",
            "7",
        ],
    );
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(saved_step(&dir), 7);
    train_ok(
        &dir,
        &["--resume", dir.to_str().unwrap(), "--save-every", "5"],
    );
    assert_eq!(saved_step(&dir), 16);
}

/// A plot that cannot be written (here `loss.png` is a directory) is one warning line;
/// the epoch's training state is saved and the run goes on to its end. Its stale
/// `.loss.tmp.png`, and checkpoint temporaries of killed writes, are removed by the next
/// run in that directory.
#[test]
fn a_failed_plot_does_not_stop_the_run_or_the_state_and_stale_temps_go() {
    let dir = scratch("plot-fails");
    std::fs::create_dir_all(dir.join("loss.png")).unwrap();
    let stale = dir.join(".last.safetensors.tmp-99999999");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let out = train(&dir, &["--epochs", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stale.exists(), "the stale temporary file is still there");
    let warnings: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        warnings.len(),
        2,
        "one line per failed epoch plot: {stderr}"
    );
    assert!(
        warnings[0].starts_with("ventral: warning: could not draw the plots")
            && warnings[0].contains("loss.png"),
        "{stderr}"
    );
    assert_eq!(saved_step(&dir), 16, "both epochs saved");
    assert!(dir.join(".loss.tmp.png").exists());
    std::fs::remove_dir(dir.join("loss.png")).unwrap();
    train_ok(&dir, &["--resume", dir.to_str().unwrap(), "--epochs", "3"]);
    assert!(!dir.join(".loss.tmp.png").exists());
    assert!(dir.join("loss.png").is_file());
}

/// A metrics file that cannot be written (here `/dev/full`: every write fails with "no
/// space left") is one warning line per record; the epoch's state is saved and the run ends
/// normally. Before, the failed write ended the run before the state was saved.
#[test]
fn a_failed_metrics_write_does_not_stop_the_run_or_the_state() {
    let dir = scratch("metrics-fail");
    std::os::unix::fs::symlink("/dev/full", dir.join("metrics.jsonl")).unwrap();
    let out = train(&dir, &["--epochs", "1", "--overwrite"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("ventral: warning: could not write metrics.jsonl"),
        "{stderr}"
    );
    assert_eq!(saved_step(&dir), 8);
    assert!(dir.join("best.safetensors").is_file());
}

/// A directory holding a run is not overwritten by a new one unless `--overwrite`.
#[test]
fn an_existing_run_is_not_overwritten_without_overwrite() {
    let dir = scratch("overwrite");
    train_ok(&dir, &["--epochs", "1"]);
    let before = bytes(&dir, "last.safetensors");
    let again = train(&dir, &["--epochs", "1", "--seed", "5"]);
    assert_one_line_error(&again, &["already holds a run", "--overwrite", "--resume"]);
    assert_eq!(bytes(&dir, "last.safetensors"), before);
    train_ok(&dir, &["--epochs", "1", "--seed", "5", "--overwrite"]);
    assert_ne!(bytes(&dir, "last.safetensors"), before);
}

/// `forward --output` naming an input is refused, and the input is left intact.
#[test]
fn forward_never_writes_over_an_input() {
    let dir = scratch("forward-output");
    train_ok(&dir, &["--epochs", "1"]);
    let weights = dir.join("last.safetensors");
    let before = bytes(&dir, "last.safetensors");
    let w = weights.to_str().unwrap();
    let other = format!(
        "{}/../{}/last.safetensors",
        dir.display(),
        dir.file_name().unwrap().to_str().unwrap()
    );
    for output in [w, other.as_str()] {
        let out = run(&["forward", "--weights", w, "--input", w, "--output", output]);
        assert_one_line_error(&out, &["--output", "is the --weights file"]);
    }
    let input = dir.join("in.safetensors");
    let mut x = StateDict::new();
    x.insert(
        "input",
        TensorRecord::new("input", vec![1, 1, 28, 28], TensorData::F32(vec![0.0; 784])).unwrap(),
    );
    checkpoint::save(&input, &x).unwrap();
    let i = input.to_str().unwrap();
    let out = run(&["forward", "--weights", w, "--input", i, "--output", i]);
    assert_one_line_error(&out, &["--output", "is the --input file"]);
    assert_eq!(bytes(&dir, "last.safetensors"), before);
    assert!(checkpoint::load(&input).unwrap().get("input").is_some());
}

/// The saved state's entries, to be edited.
fn entries(dir: &Path) -> Vec<(String, TensorRecord)> {
    checkpoint::load(&dir.join("train_state.safetensors"))
        .unwrap()
        .iter()
        .map(|(k, r)| (k.to_string(), r.clone()))
        .collect()
}

fn i64_record(name: &str, shape: Vec<usize>, values: Vec<i64>) -> TensorRecord {
    TensorRecord::new(name, shape, TensorData::I64(values)).unwrap()
}

/// Replaces (or, with `None`, removes) `key`.
fn set(entries: &mut Vec<(String, TensorRecord)>, key: &str, record: Option<TensorRecord>) {
    let at = entries.iter().position(|(k, _)| k == key);
    match (at, record) {
        (Some(i), Some(r)) => entries[i].1 = r,
        (Some(i), None) => {
            entries.remove(i);
        }
        (None, Some(r)) => entries.push((key.to_string(), r)),
        (None, None) => panic!("no {key}"),
    }
}

/// Every kind of damage to a training state is refused in one line naming the tensor,
/// before anything is restored (the state file is left as it was). Before: a momentum
/// buffer one element short panicked in SGD (`copy_from_slice`), Adam's indexed out of
/// bounds, and the values were taken unchecked (an accuracy of 6.4e17 %, 212 %, a resume at
/// the wrong epoch, a negative step, missing buffers and extra keys ignored).
#[test]
fn a_corrupt_training_state_is_refused_whole_naming_the_tensor() {
    let good = scratch("corrupt-source");
    // Stopped mid-epoch (step 3 of 8): every entry is in play.
    let out = train(&good, &["--epochs", "2", "--stop-after-steps", "3"]);
    assert_eq!(out.status.code(), Some(130));
    let base = entries(&good);
    let f32_of = |key: &str| base.iter().find(|(k, _)| k == key).unwrap().1.clone();
    let buffer = f32_of("optimizer.momentum_buffer.0");
    let mut short = buffer.as_f32().unwrap().to_vec();
    short.pop();
    type Edit = Box<dyn Fn(&mut Vec<(String, TensorRecord)>)>;
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "momentum buffer one short",
            Box::new(move |e| {
                let r = TensorRecord::new("b", vec![short.len()], TensorData::F32(short.clone()));
                set(e, "optimizer.momentum_buffer.0", Some(r.unwrap()));
            }),
            vec![
                "optimizer part",
                "`momentum_buffer.0` has shape [149], the model needs [150]",
            ],
        ),
        (
            "missing momentum buffer",
            Box::new(|e| set(e, "optimizer.momentum_buffer.3", None)),
            vec!["optimizer part", "missing keys: momentum_buffer.3"],
        ),
        (
            "extra optimizer key",
            Box::new(|e| {
                set(
                    e,
                    "optimizer.exp_avg.0",
                    Some(i64_record("x", vec![], vec![1])),
                );
            }),
            vec!["unexpected keys: exp_avg.0"],
        ),
        (
            "extra key",
            Box::new(|e| set(e, "bogus", Some(i64_record("bogus", vec![], vec![1])))),
            vec!["unexpected entry `bogus`"],
        ),
        (
            "epoch_correct = i64::MAX",
            Box::new(|e| {
                let r = i64_record("epoch_correct", vec![], vec![i64::MAX]);
                set(e, "epoch_correct", Some(r));
            }),
            vec!["`epoch_correct` is 9223372036854775807, more than `epoch_seen` (192)"],
        ),
        (
            "epoch_seen = -1",
            Box::new(|e| {
                set(
                    e,
                    "epoch_seen",
                    Some(i64_record("epoch_seen", vec![], vec![-1])),
                )
            }),
            vec!["`epoch_seen` is -1, below 0"],
        ),
        (
            "epoch_seen past the batches done",
            Box::new(|e| {
                set(
                    e,
                    "epoch_seen",
                    Some(i64_record("epoch_seen", vec![], vec![500])),
                )
            }),
            vec!["`epoch_seen` is 500, more than the 192 samples"],
        ),
        (
            "epoch of shape [2]",
            Box::new(|e| set(e, "epoch", Some(i64_record("epoch", vec![2], vec![0, 1])))),
            vec!["`epoch` is I64 of shape [2]; a training state holds an I64 scalar"],
        ),
        (
            "negative step",
            Box::new(|e| set(e, "step", Some(i64_record("step", vec![], vec![-5])))),
            vec!["`step` is -5, below 0"],
        ),
        (
            "next_batch past the epoch",
            Box::new(|e| {
                set(
                    e,
                    "next_batch",
                    Some(i64_record("next_batch", vec![], vec![9])),
                )
            }),
            vec!["`next_batch` is 9, past the epoch's 8 batches"],
        ),
        (
            "order one short",
            Box::new(|e| {
                set(
                    e,
                    "order",
                    Some(i64_record("order", vec![511], (0..511).collect())),
                );
            }),
            vec!["`order` has 511 entries for a training set of 512 samples"],
        ),
        (
            "order not a permutation",
            Box::new(|e| {
                let mut order: Vec<i64> = (0..512).collect();
                order[7] = 3;
                set(e, "order", Some(i64_record("order", vec![512], order)));
            }),
            vec!["`order` is not a permutation of 0..512 (entry 3)"],
        ),
        (
            "model tensor of another shape",
            Box::new(move |e| {
                let r = TensorRecord::new("w", vec![6, 1, 5, 4], TensorData::F32(vec![0.0; 120]));
                set(e, "model.conv1.weight", Some(r.unwrap()));
            }),
            vec![
                "model part does not fit",
                "`conv1.weight` has shape [6, 1, 5, 4]",
            ],
        ),
    ];
    for (what, edit, needles) in cases {
        let dir = scratch("corrupt");
        for name in ["config.json", "metrics.jsonl"] {
            std::fs::copy(good.join(name), dir.join(name)).unwrap();
        }
        let mut e = base.clone();
        edit(&mut e);
        let mut state = StateDict::new();
        for (k, r) in e {
            state.insert(k, r);
        }
        let path = dir.join("train_state.safetensors");
        checkpoint::save(&path, &state).unwrap();
        let before = std::fs::read(&path).unwrap();
        let out = run(&["train", "--resume", dir.to_str().unwrap(), "--quiet"]);
        let mut needles = needles;
        needles.push("train_state.safetensors");
        let line = assert_one_line_error(&out, &needles);
        assert!(line.contains("cannot resume"), "{what}: {line}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "{what}: state untouched"
        );
        assert!(
            !dir.join("last.safetensors").exists(),
            "{what}: nothing trained"
        );
    }
}
