//! `ventral train --distributed` under `mpirun -np 2 --oversubscribe` on this machine (built
//! only with `--features mpi`; `mpirun` must be on the PATH): two processes match one within
//! a documented f32 tolerance and repeat themselves bit for bit, checkpoints move between
//! process counts, and a crashed rank ends the job instead of hanging it.
//!
//! Each process uses one thread (`--threads 1`) so that two ranks do not oversubscribe a
//! small CI machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{bytes, scratch};
use ventral_nn::checkpoint;

/// The largest difference allowed between a weight trained by 2 processes and by 1 after
/// the runs below (32 steps of LeNet-5 or the MLP, learning rate 0.05, momentum 0.9): the
/// two sum each batch's gradient in a different order (two half-batch sums added by the
/// all-reduce, against one sum over the batch), so they differ by f32 rounding, which the
/// steps then carry forward. Measured: 4.5e-8 (LeNet-5) and 5.2e-8 (MLP); the bound leaves
/// a margin of 200 while staying far below the size of one update (~1e-3).
const TOLERANCE: f32 = 1e-5;

/// The `mpirun` on the PATH, or a failure that says how to get one.
fn mpirun_path() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("mpirun"))
        .find(|p| p.is_file())
        .expect("mpirun is not on the PATH: install OpenMPI (Debian: apt-get install openmpi-bin libopenmpi-dev)")
}

/// `mpirun -np N ventral ARGS… --threads 1`, allowed to run as root (as CI does).
fn mpirun(np: usize, args: &[&str]) -> Command {
    let mut cmd = Command::new(mpirun_path());
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["-np", &np.to_string(), "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_ventral"))
        .args(args)
        .args(["--threads", "1"]);
    cmd
}

/// `mpirun` with two programs (MPMD): rank 0 runs `ventral RANK0…`, rank 1 `ventral RANK1…`.
fn mpirun_pair(rank0: &[&str], rank1: &[&str]) -> Command {
    let mut cmd = Command::new(mpirun_path());
    let bin = env!("CARGO_BIN_EXE_ventral");
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "-np", "1", bin])
        .args(rank0)
        .args(["--threads", "1", ":", "-np", "1", bin])
        .args(rank1)
        .args(["--threads", "1"]);
    cmd
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The arguments of a small MNIST run into `out`: 500 images in batches of 32 (16 steps an
/// epoch, the last one of 20 images, split 10 + 10), 200 test images.
fn train_args<'a>(model: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--model",
        model,
        "--dataset",
        "mnist",
        "--limit-train",
        "500",
        "--limit-test",
        "200",
        "--batch-size",
        "32",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// Trains on `np` processes (0: one process without `--distributed`), failing the test
/// unless the run exits 0.
fn train(np: usize, model: &str, out: &Path, extra: &[&str]) -> Output {
    let args = train_args(model, out, extra);
    let output = if np == 0 {
        common::ventral()
            .args(&args)
            .args(["--threads", "1"])
            .output()
    } else {
        let mut args = args;
        args.push("--distributed");
        mpirun(np, &args).output()
    }
    .expect("the run starts");
    assert!(output.status.success(), "{}", describe(&output));
    output
}

/// The largest absolute difference between the f32 tensors of two safetensors files with
/// the same names and shapes.
fn max_difference(a: &Path, b: &Path) -> f32 {
    let (a, b) = (checkpoint::load(a).unwrap(), checkpoint::load(b).unwrap());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut max = 0.0f32;
    for (name, x) in a.iter() {
        let (Some(x), Some(y)) = (x.as_f32(), b.get(name).unwrap().as_f32()) else {
            continue;
        };
        assert_eq!(x.len(), y.len(), "{name}");
        for (u, v) in x.iter().zip(y) {
            max = max.max((u - v).abs());
        }
    }
    max
}

fn saved_step(dir: &Path) -> i64 {
    let state = checkpoint::load(&dir.join("train_state.safetensors")).unwrap();
    state.get("step").unwrap().as_i64().unwrap()[0]
}

fn equivalence(model: &str) {
    let one = scratch(&format!("mpi-{model}-one"));
    let two = scratch(&format!("mpi-{model}-two"));
    let again = scratch(&format!("mpi-{model}-two-again"));
    let extra = ["--epochs", "2"];
    train(0, model, &one, &extra);
    let out = train(2, model, &two, &extra);
    train(2, model, &again, &extra);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Rank 0 alone prints: one line per epoch and the summary.
    assert_eq!(stdout.matches("epoch   2/2").count(), 1, "{stdout}");
    assert!(stdout.contains("communication"), "{stdout}");
    let diff = max_difference(&one.join("last.safetensors"), &two.join("last.safetensors"));
    eprintln!("{model}: 2 processes against 1, largest weight difference {diff:e}");
    assert!(diff <= TOLERANCE, "{model}: {diff} > {TOLERANCE}");
    assert_eq!(saved_step(&two), 32);
    assert_eq!(
        bytes(&two, "last.safetensors"),
        bytes(&again, "last.safetensors"),
        "two runs on 2 processes differ"
    );
    assert_eq!(
        bytes(&two, "train_state.safetensors"),
        bytes(&again, "train_state.safetensors")
    );
}

#[test]
fn lenet5_on_two_processes_matches_one_and_repeats_exactly() {
    equivalence("lenet5");
}

#[test]
fn mlp_on_two_processes_matches_one_and_repeats_exactly() {
    equivalence("mlp");
}

#[test]
fn a_two_process_checkpoint_resumes_on_one_and_back() {
    // Straight: 2 epochs on one process.
    let straight = scratch("mpi-resume-straight");
    train(0, "lenet5", &straight, &["--epochs", "2"]);

    // 2 processes stopped mid-epoch (step 5 of 16), then resumed on one. Only rank 1 is
    // told to stop, as when one process gets SIGINT: both must stop after the same step.
    let from_two = scratch("mpi-resume-from-two");
    let args = train_args("lenet5", &from_two, &["--epochs", "2", "--distributed"]);
    let stop = [args.as_slice(), &["--stop-after-steps", "5"]].concat();
    let stopped = mpirun_pair(&args, &stop).output().unwrap();
    assert_eq!(stopped.status.code(), Some(130), "{}", describe(&stopped));
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(
        stderr.matches("interrupted after step 5").count(),
        1,
        "{stderr}"
    );
    assert_eq!(saved_step(&from_two), 5);
    let dir = from_two.to_str().unwrap();
    common::run_ok(&["train", "--resume", dir, "--quiet", "--threads", "1"]);
    assert_eq!(saved_step(&from_two), 32);
    let diff = max_difference(
        &straight.join("last.safetensors"),
        &from_two.join("last.safetensors"),
    );
    eprintln!("2 processes, then 1: largest weight difference {diff:e}");
    assert!(diff <= TOLERANCE, "2 then 1 process: {diff}");

    // One process for an epoch, then 2 processes for the second.
    let from_one = scratch("mpi-resume-from-one");
    train(0, "lenet5", &from_one, &["--epochs", "1"]);
    assert_eq!(saved_step(&from_one), 16);
    let dir = from_one.to_str().unwrap();
    let out = mpirun(
        2,
        &[
            "train",
            "--resume",
            dir,
            "--epochs",
            "2",
            "--quiet",
            "--distributed",
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("epoch   2/2"));
    assert_eq!(saved_step(&from_one), 32);
    // The cosine schedule was laid over 1 epoch, then over 2: compare only the step count
    // and that the weights moved on.
    assert_ne!(
        bytes(&from_one, "last.safetensors"),
        bytes(&straight, "last.safetensors")
    );
}

#[test]
fn a_crashed_rank_ends_the_job_within_a_minute() {
    // Either rank: the other is then waiting in an all-reduce that will never complete.
    for (rank, step) in [(1, 3), (0, 5)] {
        let out_dir = scratch(&format!("mpi-crash-{rank}"));
        // Long enough (40 epochs of 16 steps) that only the crash can end it soon.
        let args = train_args("lenet5", &out_dir, &["--epochs", "40", "--distributed"]);
        let start = Instant::now();
        let out = mpirun(2, &args)
            .env("VENTRAL_TEST_ABORT_AT", format!("{rank}:{step}"))
            .output()
            .unwrap();
        let took = start.elapsed();
        assert!(!out.status.success(), "{}", describe(&out));
        assert!(took < Duration::from_secs(60), "took {took:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("rank {rank} crashed: exit {:?} after {took:?}", out.status);
        assert!(
            stderr.contains(&format!("rank {rank} aborting at step {step}")),
            "{stderr}"
        );
    }
}

#[test]
fn a_batch_that_does_not_split_evenly_is_refused() {
    let out_dir = scratch("mpi-uneven");
    let out_arg = out_dir.to_str().unwrap();
    let args = [
        "train",
        "--batch-size",
        "33",
        "--out",
        out_arg,
        "--distributed",
    ];
    let out = mpirun(2, &args).output().unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--batch-size 33 does not split evenly over 2 processes"),
        "{stderr}"
    );
}
