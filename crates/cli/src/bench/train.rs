//! `ventral bench train`: training and inference throughput of whole models on synthetic
//! data — forward, backward and an SGD-with-momentum update per step. With `--distributed`
//! (under `mpirun -np N`) each process takes 1/N of every batch and the gradients are
//! averaged by the all-reduce of `ventral train --distributed`; the images/s are of the
//! whole batch, and the communication share is the time spent in the all-reduce (waiting
//! for the other processes included) over the time of the steps. With `--profile` it
//! prints instead where a step's time goes, by op kind (`train_profile.rs`).

use std::time::Instant;

use std::rc::Rc;

use anyhow::{Result, bail};
use ventral_models::build;
use ventral_nn::Tensor;
use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_train::{Cluster, StepData, Trainer};

use super::peak::round;
use super::timing::{MIN_SAMPLE, median, median_seconds};
use super::train_profile::{Profiled, print as print_profile, profile_steps};

/// `(model, batch, [C, H, W], classes)`: the three workloads.
const WORKLOADS: [(&str, usize, [usize; 3], usize); 3] = [
    ("lenet5", 64, [1, 28, 28], 10),
    ("resnet20", 128, [3, 32, 32], 10),
    ("vgg11_cifar", 64, [3, 32, 32], 10),
];

/// Median seconds per call of `step` over `reps` samples after a warm-up, and the share of
/// that time spent in the cluster's collectives. Every process makes the same number of
/// calls (each call all-reduces, so they must): the calls per sample are agreed first.
fn timed_steps(
    cluster: &Cluster,
    reps: usize,
    mut step: impl FnMut() -> Result<()>,
) -> Result<(f64, f64)> {
    step()?; // warm-up: allocate buffers, fault in pages
    let start = Instant::now();
    step()?;
    let once = start.elapsed().as_secs_f64().max(1e-7);
    let mut calls = [(MIN_SAMPLE.as_secs_f64() / once).ceil().clamp(1.0, 1e6)];
    cluster.sum(&mut calls);
    let calls = (calls[0] / cluster.size() as f64).ceil() as usize;
    let (comm_before, all) = (cluster.comm_seconds(), Instant::now());
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        for _ in 0..calls {
            step()?;
        }
        samples.push(start.elapsed().as_secs_f64() / calls as f64);
    }
    let share = (cluster.comm_seconds() - comm_before) / all.elapsed().as_secs_f64();
    Ok((median(&mut samples), share))
}

/// Runs the benchmark on every process of `cluster` and prints (on rank 0) a table or JSON
/// lines.
pub fn run(
    cluster: &Rc<Cluster>,
    threads: usize,
    only: &[String],
    reps: usize,
    json: bool,
    profile: bool,
) -> Result<()> {
    let (procs, leader) = (cluster.size(), cluster.is_leader());
    if profile && procs > 1 {
        bail!("--profile measures one process: run it without --distributed");
    }
    if let Some(unknown) = only
        .iter()
        .find(|m| !WORKLOADS.iter().any(|w| w.0 == m.as_str()))
    {
        anyhow::bail!(
            "--model {unknown}: bench train measures {}",
            WORKLOADS.map(|w| w.0).join(", ")
        );
    }
    if !json && leader && !profile {
        let who = if procs > 1 {
            format!("{procs} processes x {threads} thread(s)")
        } else {
            format!("{threads} thread(s)")
        };
        println!(
            "training throughput, {who}, median of {reps} steps after warm-up (synthetic data)"
        );
        println!(
            "{:>12}  {:>6}  {:>12}  {:>9}  {:>14}  {:>6}",
            "model", "batch", "train img/s", "step ms", "inference img/s", "comm %"
        );
    }
    for (name, batch, [c, h, w], classes) in WORKLOADS {
        if !only.is_empty() && !only.iter().any(|m| m == name) {
            continue;
        }
        if batch % procs != 0 {
            bail!("{name}'s batch of {batch} does not split evenly over {procs} processes");
        }
        // This process's share of the batch: rows [first, first + local).
        let (local, first) = (batch / procs, cluster.rank() * (batch / procs));
        let model = build(name, classes, 0)?;
        let x = Tensor::rand_normal(vec![local, c, h, w], 0.0, 1.0, 1 + cluster.rank() as u64)?;
        let labels: Vec<usize> = (first..first + local).map(|i| (i * 7) % classes).collect();
        let opt = Sgd::new(SgdConfig {
            momentum: 0.9,
            ..SgdConfig::new(0.01)
        })?;
        // The training step of `ventral train`: cross-entropy, the gradients of the whole
        // batch averaged over the processes, SGD with momentum.
        let mut trainer =
            Trainer::new(model, Box::new(opt), classes).with_cluster(Rc::clone(cluster));
        trainer.sync_model()?;
        let data = StepData {
            inputs: Some(&x),
            labels: &labels,
            whole: batch,
            position: None,
        };
        if profile {
            let p = profile_steps(reps, || Ok(trainer.step(data).map(drop)?))?;
            print_profile(&p, Profiled::TrainStep, name, batch, threads, reps, json);
            continue;
        }
        let (train_s, comm_share) =
            timed_steps(cluster, reps, || Ok(trainer.step(data).map(drop)?))?;
        let infer_s = median_seconds(reps, || {
            let _ = trainer.infer(&x);
        });
        // Every process infers its share at once: the whole batch takes one share's time.
        let (train_ips, infer_ips) = (batch as f64 / train_s, batch as f64 / infer_s);
        if !leader {
            continue;
        }
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "kernel": "train", "model": name, "batch": batch, "threads": threads,
                    "processes": procs, "communication_share": (comm_share * 1e4).round() / 1e4,
                    "train_images_per_sec": round(train_ips), "step_ms": (train_s * 1e5).round() / 100.0,
                    "inference_images_per_sec": round(infer_ips),
                })
            );
        } else {
            println!(
                "{name:>12}  {batch:>6}  {train_ips:>12.0}  {:>9.2}  {infer_ips:>14.0}  {:>6.1}",
                train_s * 1e3,
                100.0 * comm_share
            );
        }
    }
    Ok(())
}
