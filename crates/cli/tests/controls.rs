//! `ventral train`'s training controls through the binary: `--accumulate` (equal to the
//! bigger batch), `--label-smoothing` (refused with another loss), `--ema` (metrics,
//! `ema.safetensors`, resumed bit for bit), `--early-stop` (stops cleanly, stays stopped),
//! and the TensorBoard event file (framing, CRCs, and the scalars of metrics.jsonl).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{assert_one_line_error, bytes, run, run_ok, scratch, train, train_ok};
use serde_json::Value;

/// `ventral train` on the first 512 MNIST images, 200 test images, quiet, into `out`.
fn train_with(out: &Path, extra: &[&str]) -> std::process::Output {
    let out_dir = out.display().to_string();
    let mut args = vec![
        "train",
        "--limit-train",
        "512",
        "--limit-test",
        "200",
        "--quiet",
        "--out",
        &out_dir,
    ];
    args.extend_from_slice(extra);
    run_ok(&args)
}

fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn config(dir: &Path) -> Value {
    serde_json::from_slice(&bytes(dir, "config.json")).unwrap()
}

#[test]
fn accumulating_4_batches_of_32_equals_batches_of_128() {
    let accumulated = scratch("acc-4x32");
    let direct = scratch("acc-128");
    let plain = scratch("acc-32");
    train_with(
        &accumulated,
        &["--epochs", "1", "--batch-size", "32", "--accumulate", "4"],
    );
    train_with(&direct, &["--epochs", "1", "--batch-size", "128"]);
    train_with(&plain, &["--epochs", "1", "--batch-size", "32"]);
    assert_eq!(config(&accumulated)["args"]["accumulate"], 4);
    // Optimizer steps are counted: 512 / 128 = 4 in both runs.
    let last = |dir: &Path| records(dir).last().unwrap()["step"].as_u64().unwrap();
    assert_eq!((last(&accumulated), last(&direct)), (4, 4));
    let load = |dir: &Path| ventral_nn::checkpoint::load(&dir.join("last.safetensors")).unwrap();
    let (a, d, p) = (load(&accumulated), load(&direct), load(&plain));
    let mut worst: f64 = 0.0;
    let mut plain_worst: f64 = 0.0;
    for (name, record) in d.iter() {
        let want = record.as_f32().unwrap();
        for (other, worst) in [(&a, &mut worst), (&p, &mut plain_worst)] {
            let got = other.get(name).unwrap().as_f32().unwrap();
            for (&g, &w) in got.iter().zip(want) {
                let rel = f64::from((g - w).abs()) / f64::from(g.abs().max(w.abs()).max(1e-3));
                *worst = worst.max(rel);
            }
        }
    }
    eprintln!(
        "4 x 32 accumulated vs 128: max relative difference {worst:e}; 32 alone: {plain_worst:e}"
    );
    assert!(worst < 1e-5, "relative difference {worst}");
    assert!(
        plain_worst > 1e-2,
        "batches of 32 without accumulation differ: {plain_worst}"
    );
}

#[test]
fn label_smoothing_is_recorded_and_refused_with_another_loss() {
    let dir = scratch("smooth-hinge");
    let out = train(&dir, &["--loss", "hinge", "--label-smoothing", "0.1"]);
    assert_one_line_error(&out, &["--label-smoothing", "cross-entropy", "hinge"]);
    assert!(!dir.join("config.json").exists(), "nothing written");
    let out = run(&["train", "--label-smoothing", "1"]);
    assert_one_line_error(&out, &["--label-smoothing", "[0, 1)"]);
    let smooth = scratch("smooth");
    let plain = scratch("smooth-plain");
    train_ok(&smooth, &["--epochs", "1", "--label-smoothing", "0.1"]);
    train_ok(&plain, &["--epochs", "1"]);
    assert_eq!(
        config(&smooth)["args"]["label_smoothing"].as_f64().unwrap() as f32,
        0.1
    );
    assert_ne!(
        bytes(&smooth, "last.safetensors"),
        bytes(&plain, "last.safetensors")
    );
}

#[test]
fn ema_is_evaluated_saved_and_resumed_bit_for_bit() {
    let out = run(&["train", "--ema", "1"]);
    assert_one_line_error(&out, &["--ema", "(0, 1)"]);
    let straight = scratch("ema-straight");
    let stdout = train_ok(&straight, &["--epochs", "2", "--ema", "0.9"]).stdout;
    assert!(String::from_utf8_lossy(&stdout).contains("ema loss"));
    let epochs: Vec<Value> = records(&straight)
        .into_iter()
        .filter(|r| r["kind"] == "epoch")
        .collect();
    assert_eq!(epochs.len(), 2);
    for e in &epochs {
        let acc = e["ema_test_accuracy"].as_f64().expect("ema_test_accuracy");
        assert!((0.0..=1.0).contains(&acc) && e["ema_test_loss"].as_f64().is_some());
    }
    assert_ne!(
        bytes(&straight, "ema.safetensors"),
        bytes(&straight, "last.safetensors")
    );

    let stopped = scratch("ema-stopped");
    let out = train(
        &stopped,
        &["--epochs", "2", "--ema", "0.9", "--stop-after-steps", "11"],
    );
    assert_eq!(out.status.code(), Some(130));
    let dir = stopped.to_str().unwrap();
    let conflict = run(&["train", "--resume", dir, "--ema", "0.5"]);
    assert_one_line_error(&conflict, &["--ema 0.5 conflicts", "0.9"]);
    run_ok(&["train", "--resume", dir, "--quiet"]);
    for name in ["ema.safetensors", "last.safetensors"] {
        assert_eq!(bytes(&straight, name), bytes(&stopped, name), "{name}");
    }
}

#[test]
fn early_stop_ends_the_run_cleanly_and_it_stays_ended() {
    // At learning rate 0 nothing changes: epoch 1 sets the best test loss, epoch 2 does
    // not improve on it, so patience 1 stops after epoch 2 of 5.
    let dir = scratch("early");
    let out = train_ok(&dir, &["--epochs", "5", "--lr", "0", "--early-stop", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("early stop: the test loss has not improved for 1 epochs"),
        "{stdout}"
    );
    let kinds: Vec<String> = records(&dir)
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["epoch", "epoch", "early_stop"]);
    assert!(dir.join("last.safetensors").exists() && dir.join("best.safetensors").exists());
    assert_eq!(config(&dir)["args"]["early_stop"], 1);
    // Resumed, it ends at once: no epoch is added.
    let out = run_ok(&["train", "--resume", dir.to_str().unwrap(), "--quiet"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("early stop"));
    let kinds: Vec<Value> = records(&dir).iter().map(|r| r["kind"].clone()).collect();
    assert_eq!(
        kinds,
        ["epoch", "epoch", "early_stop"],
        "no epoch and no record added"
    );
    let out = run(&["train", "--early-stop", "0"]);
    assert_one_line_error(&out, &["--early-stop", "0"]);
}

/// CRC-32C bit by bit (the reflected Castagnoli polynomial), independent of the
/// binary's table.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn masked(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xA282_EAD8)
}

/// The protobuf fields of `data`: (field number, varint value or raw bytes).
fn fields(mut data: &[u8]) -> Vec<(u64, Result<u64, Vec<u8>>)> {
    fn varint(data: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = data[0];
            *data = &data[1..];
            v |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !data.is_empty() {
        let key = varint(&mut data);
        let value = match key & 7 {
            0 => Ok(varint(&mut data)),
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                let (v, rest) = data.split_at(n);
                data = rest;
                Err(v.to_vec())
            }
            2 => {
                let n = varint(&mut data) as usize;
                let (v, rest) = data.split_at(n);
                data = rest;
                Err(v.to_vec())
            }
            w => panic!("wire type {w}"),
        };
        out.push((key >> 3, value));
    }
    out
}

/// The records of an event file, each checked against its length and data CRCs.
fn read_records(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(
            len_crc,
            masked(len_bytes),
            "length CRC of the record at {at}"
        );
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked(data), "data CRC of the record at {at}");
        out.push(data.to_vec());
        at += 16 + len;
    }
    out
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn tensorboard_events_hold_the_scalars_of_metrics_jsonl() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283, "the test's own CRC-32C");
    let dir = scratch("tensorboard");
    // 6400 images in batches of 64: 100 steps, so one step record.
    train_ok(
        &dir,
        &["--epochs", "1", "--limit-train", "6400", "--ema", "0.9"],
    );
    let files = event_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let events = read_records(&files[0]);
    // The first event: file_version "brain.Event:2".
    let first = fields(&events[0]);
    assert!(
        first.contains(&(3, Err(b"brain.Event:2".to_vec()))),
        "{first:?}"
    );
    // The second: SessionLog{status: START} at step 0 (a fresh run).
    assert_eq!(
        fields(&events[1])[1..],
        [(2, Ok(0)), (6, Err(vec![0x08, 0x01]))]
    );
    let mut board: BTreeMap<(String, u64), f32> = BTreeMap::new();
    let mut images = Vec::new();
    for record in &events[2..] {
        let event = fields(record);
        let step = event
            .iter()
            .find(|f| f.0 == 2)
            .map_or(0, |f| *f.1.as_ref().unwrap());
        let wall = event
            .iter()
            .find(|f| f.0 == 1)
            .unwrap()
            .1
            .clone()
            .unwrap_err();
        let wall = f64::from_le_bytes(wall.try_into().unwrap());
        assert!(wall > 1.6e9, "wall_time in seconds since 1970: {wall}");
        let summary = event
            .iter()
            .find(|f| f.0 == 5)
            .unwrap()
            .1
            .clone()
            .unwrap_err();
        for (field, value) in fields(&summary) {
            assert_eq!(field, 1);
            let value = fields(&value.unwrap_err());
            let tag = String::from_utf8(value[0].1.clone().unwrap_err()).unwrap();
            if value[1].0 == 4 {
                // Image{height: 1, width: 2, colorspace: 3, encoded_image_string: 4}.
                images.push((tag, step, fields(&value[1].1.clone().unwrap_err())));
                continue;
            }
            assert_eq!(value[1].0, 2, "simple_value");
            let v = f32::from_le_bytes(value[1].1.clone().unwrap_err().try_into().unwrap());
            assert!(
                board.insert((tag, step), v).is_none(),
                "one value per tag and step"
            );
        }
    }
    // Every scalar of metrics.jsonl, under its tag and step, and nothing else.
    let tags = [
        ("step", "loss", "step/loss"),
        ("step", "lr", "step/lr"),
        ("epoch", "train_loss", "train/loss"),
        ("epoch", "train_accuracy", "train/accuracy"),
        ("epoch", "test_loss", "test/loss"),
        ("epoch", "test_accuracy", "test/accuracy"),
        ("epoch", "lr", "lr"),
        ("epoch", "ema_test_loss", "ema/test_loss"),
        ("epoch", "ema_test_accuracy", "ema/test_accuracy"),
    ];
    let mut expected = BTreeMap::new();
    for r in records(&dir) {
        for (kind, key, tag) in tags {
            if r["kind"] == kind {
                let step = r["step"].as_u64().unwrap();
                expected.insert((tag.to_string(), step), r[key].as_f64().unwrap() as f32);
            }
        }
    }
    assert!(expected.contains_key(&("step/loss".to_string(), 100)));
    assert_eq!(board, expected);

    // After the epoch (step 100), the first convolution's filters as `ventral visualize
    // filters` draws them from last.safetensors.
    assert_eq!(images.len(), 1);
    let (tag, step, image) = &images[0];
    assert_eq!((tag.as_str(), *step), ("filters/conv1.weight", 100));
    let drawn = dir.join("filters.png");
    run_ok(&[
        "visualize",
        "filters",
        "--model",
        "lenet5",
        "--weights",
        dir.join("last.safetensors").to_str().unwrap(),
        "--out",
        drawn.to_str().unwrap(),
    ]);
    let png = std::fs::read(&drawn).unwrap();
    let info = png::Decoder::new(std::io::Cursor::new(&png))
        .read_info()
        .unwrap()
        .info()
        .clone();
    assert_eq!(
        image[..],
        [
            (1, Ok(u64::from(info.height))),
            (2, Ok(u64::from(info.width))),
            (3, Ok(3)),
            (4, Err(png.clone())),
        ]
    );
}
