//! Checkpoint files: round trips, strict matching, corrupt input and crash safety.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ventral_nn::checkpoint::{
    CheckpointError, DType, StateDict, TensorData, TensorRecord, load, save,
};

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ventral-ckpt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("model.safetensors")
}

fn sample(scale: f32) -> StateDict {
    let mut s = StateDict::new();
    let w: Vec<f32> = (0..6).map(|i| i as f32 * scale).collect();
    s.insert(
        "conv1.weight",
        TensorRecord::new("conv1.weight", vec![2, 3], TensorData::F32(w)).unwrap(),
    );
    s.insert(
        "conv1.bias",
        TensorRecord::new("conv1.bias", vec![2], TensorData::F32(vec![0.5, -0.5])).unwrap(),
    );
    s.insert(
        "bn1.num_batches_tracked",
        TensorRecord::new("bn1.num_batches_tracked", vec![], TensorData::I64(vec![42])).unwrap(),
    );
    s
}

#[test]
fn round_trip_keeps_names_shapes_dtypes_and_bits() {
    let path = temp_path("roundtrip");
    let original = sample(0.1);
    save(&path, &original).unwrap();
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.len(), original.len());
    for (name, record) in original.iter() {
        assert_eq!(loaded.get(name), Some(record), "{name}");
    }
    assert_eq!(
        loaded.get("bn1.num_batches_tracked").unwrap().dtype(),
        DType::I64
    );
}

#[test]
fn file_layout_is_safetensors() {
    // safetensors: 8-byte little-endian header length, a JSON header, then the raw data.
    let path = temp_path("layout");
    save(&path, &sample(1.0)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(
        header.contains("\"conv1.weight\"")
            && header.contains("\"F32\"")
            && header.contains("\"I64\""),
        "{header}"
    );
    assert!(header.contains("\"format\":\"pt\""), "{header}");
    // Data: 6 + 2 floats and one i64.
    assert_eq!(bytes.len(), 8 + n + 8 * 4 + 8);
}

#[test]
fn strict_matching_reports_every_problem_by_name() {
    let s = sample(1.0);
    let ok: Vec<(&str, &[usize], DType)> = vec![
        ("conv1.weight", &[2, 3], DType::F32),
        ("conv1.bias", &[2], DType::F32),
        ("bn1.num_batches_tracked", &[], DType::I64),
    ];
    s.check_matches(ok).unwrap();
    let bad: Vec<(&str, &[usize], DType)> = vec![
        ("conv1.weight", &[3, 2], DType::F32),
        ("conv1.bias", &[2], DType::I64),
        ("fc.weight", &[10, 4], DType::F32),
    ];
    let err = s.check_matches(bad).unwrap_err().to_string();
    for needle in [
        "missing keys: fc.weight",
        "unexpected keys: bn1.num_batches_tracked",
        "`conv1.weight` has shape [2, 3]",
        "`conv1.bias` is F32",
    ] {
        assert!(err.contains(needle), "{needle} not in: {err}");
    }
}

#[test]
fn records_must_match_their_shape() {
    let err = TensorRecord::new("x", vec![2, 2], TensorData::F32(vec![0.0; 3])).unwrap_err();
    assert!(
        matches!(
            &err,
            CheckpointError::BadRecord {
                expected: 4,
                actual: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "tensor `x`: shape [2, 2] needs 4 values, got 3"
    );
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    let path = temp_path("corrupt");
    save(&path, &sample(1.0)).unwrap();
    let good = std::fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated header length", good[..4].to_vec()),
        ("truncated data", good[..good.len() - 3].to_vec()),
        ("garbage", b"this is not a checkpoint at all".to_vec()),
        // A header claiming 2^60 bytes must be rejected without allocating them.
        ("absurd header length", {
            let mut b = (1u64 << 60).to_le_bytes().to_vec();
            b.extend_from_slice(b"{}");
            b
        }),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        match load(&path) {
            Err(CheckpointError::Format { .. }) => {}
            other => panic!("{what}: expected a format error, got {other:?}"),
        }
    }
    assert!(matches!(
        load(&path.with_extension("missing")),
        Err(CheckpointError::Io { .. })
    ));
}

/// Child side of the crash test: saves ever-changing large checkpoints until killed.
#[test]
#[ignore = "run by crash_during_save_keeps_a_valid_checkpoint as a child process"]
fn child_keeps_saving() {
    let Ok(path) = std::env::var("VENTRAL_CRASH_TEST_PATH") else {
        return;
    };
    let path = PathBuf::from(path);
    let mut state = StateDict::new();
    for step in 0.. {
        let values = vec![step as f32; 1 << 20];
        state.insert(
            "w",
            TensorRecord::new("w", vec![1 << 20], TensorData::F32(values)).unwrap(),
        );
        save(&path, &state).unwrap();
        // The parent waits for this line before it kills us.
        println!("saved {step}");
    }
}

#[test]
fn crash_during_save_keeps_a_valid_checkpoint() {
    let path = temp_path("crash");
    save(&path, &sample(1.0)).unwrap();
    for attempt in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_keeps_saving", "--ignored", "--nocapture"])
            .env("VENTRAL_CRASH_TEST_PATH", &path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the child has finished two saves, so the kill below lands while it is
        // writing a later one (a 4 MiB save takes a few milliseconds).
        // The pipe stays open until after the kill, so the child's next print cannot fail.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut saves = 0;
        for line in lines.by_ref() {
            if line.unwrap().starts_with("saved ") {
                saves += 1;
                if saves == 2 {
                    break;
                }
            }
        }
        assert_eq!(saves, 2, "the child exited before saving twice");
        std::thread::sleep(Duration::from_millis(3 * attempt));
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lines);
        // Whatever moment the kill hit, the file is a complete checkpoint written by the
        // child (it replaced the original at least twice), every value equal to the step that
        // wrote it.
        let state = load(&path).unwrap();
        let w = state
            .get("w")
            .expect("the child's checkpoint replaced the original");
        let values = w.as_f32().unwrap();
        assert_eq!(values.len(), 1 << 20);
        assert!(
            values[0] >= 1.0,
            "step {} precedes the second save",
            values[0]
        );
        assert!(values.iter().all(|&v| v == values[0]), "a torn write");
    }
}
