//! `--resume DIR`: the run's settings from `DIR/config.json`, checked against the flags given
//! now, and its saved state.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::args::TrainArgs;
use ventral_train::{STATE_FILE, TrainState};

/// Flags that may differ from the saved run: they do not change what is computed (threads:
/// results are bit-identical at any thread count), or they extend it (epochs).
/// `distributed`: the batch size is the whole batch over all processes, so a run continues
/// the same on any number of them.
const FREE: [&str; 10] = [
    "resume",
    "save_every",
    "overwrite",
    "threads",
    "quiet",
    "epochs",
    "stop_after_steps",
    "anomaly",
    "distributed",
    "data_workers",
];

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "(not set)".to_string(),
        // `--freeze a,b`, `--classes 0,1`: as they are written.
        Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(","),
        // Flags hold f32 values, widened to f64 in JSON: show them as typed.
        Value::Number(n) if n.is_f64() => (n.as_f64().unwrap_or(f64::NAN) as f32).to_string(),
        other => other.to_string(),
    }
}

/// The settings of the run in `dir`, with the flags that may change taken from `now`, and
/// its saved state.
///
/// # Errors
/// A missing or unreadable `config.json` or training state; a flag in `given` whose value
/// differs from the run's; a run that already finished its epochs.
pub fn prepare(now: TrainArgs, given: &[String], dir: &Path) -> Result<(TrainArgs, TrainState)> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot resume from {}", config_path.display()))?;
    let config: Value = serde_json::from_str(&text)
        .with_context(|| format!("cannot resume: {} is not JSON", config_path.display()))?;
    let saved: TrainArgs = serde_json::from_value(config["args"].clone()).with_context(|| {
        format!(
            "cannot resume: {} holds no `args` of ventral train",
            config_path.display()
        )
    })?;

    let saved_json = serde_json::to_value(&saved)?;
    let now_json = serde_json::to_value(&now)?;
    for id in given {
        if FREE.contains(&id.as_str()) {
            continue;
        }
        let flag = id.replace('_', "-");
        if id == "out" {
            if now.out != dir {
                bail!(
                    "--out {} conflicts with --resume {}: a resumed run writes into the directory it resumes",
                    now.out.display(),
                    dir.display()
                );
            }
            continue;
        }
        let (a, b) = (&now_json[id.as_str()], &saved_json[id.as_str()]);
        if a != b {
            bail!(
                "--{flag} {} conflicts with the run in {}, which used --{flag} {}; leave the flag out to continue that run, or train a new one with another --out",
                show(a),
                dir.display(),
                show(b)
            );
        }
    }

    let state_path = dir.join(STATE_FILE);
    let state = TrainState::load(&state_path)
        .with_context(|| format!("cannot resume from {}", dir.display()))?;
    let mut args = saved;
    if state.seed != args.seed {
        bail!(
            "cannot resume: {} was saved with seed {}, but {} says {}",
            state_path.display(),
            state.seed,
            config_path.display(),
            args.seed
        );
    }
    if given.iter().any(|g| g == "epochs") {
        args.epochs = now.epochs;
    }
    if state.next_batch == 0 && state.epoch >= u64::from(args.epochs) {
        bail!(
            "the run in {} already finished {} epochs; pass --epochs N with N > {} to train it further",
            dir.display(),
            state.epoch,
            state.epoch
        );
    }
    if state.epoch >= u64::from(args.epochs) {
        bail!(
            "--epochs {} is less than the {} epochs the run in {} has started",
            args.epochs,
            state.epoch + 1,
            dir.display()
        );
    }
    args.out = dir.to_path_buf();
    args.resume = Some(dir.to_path_buf());
    args.threads = now.threads;
    args.quiet = now.quiet;
    args.stop_after_steps = now.stop_after_steps;
    args.anomaly = now.anomaly;
    args.distributed = now.distributed;
    args.save_every = now.save_every;
    args.data.data_workers = now.data.data_workers;
    Ok((args, state))
}
