//! `ventral bench`: kernel speed as GFLOP/s, as a ratio to a peer measured in the same run,
//! and as a fraction of this CPU's FMA peak.

mod conv;
mod gemm;
mod infer;
mod peak;
mod peer;
mod peer_threads;
mod timing;
mod train;
mod train_profile;

use std::rc::Rc;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ventral_train::Cluster;

use crate::errors::finish;

/// Arguments of `ventral bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    what: BenchTarget,
    /// Worker threads (default: one per CPU core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// GEMM shapes: `S` for a square S x S x S or `MxKxN`, comma separated.
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<gemm::Shape>,
    /// `bench train`: only these models (repeatable; default: all three). `bench infer`: any
    /// zoo models (repeatable; default: resnet18 and resnet50).
    #[arg(long = "model")]
    models: Vec<String>,
    /// `bench infer`: images per batch.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch: Option<u32>,
    /// Timed repetitions per kernel (the median is reported); at least 7.
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u32).range(7..=1000))]
    reps: u32,
    /// `bench gemm`: time every GEMM micro-kernel this CPU runs, side by side, instead of
    /// Ventral's choice against matrixmultiply.
    #[arg(long)]
    candidates: bool,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// `bench train` on every process of an MPI job (`mpirun -np N`): each takes 1/N of
    /// every batch and gradients are all-reduced as in `ventral train --distributed`.
    #[arg(long)]
    distributed: bool,
    /// `bench train`: print the time of a training step by op kind (conv forward, input and
    /// weight gradients, batch norm, ReLU, pooling, matmul, loss, optimizer, other) instead
    /// of the throughput. `bench infer`: the same for an inference batch.
    #[arg(long)]
    profile: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BenchTarget {
    /// This CPU's f32 FMA peak, on one thread and on all threads.
    Peak,
    /// Single-precision GEMM against matrixmultiply.
    Gemm,
    /// Convolution layers of real networks against im2col / col2im + matrixmultiply.
    Conv,
    /// Training and inference images/s of LeNet-5, ResNet-20 and VGG-11 (CIFAR).
    Train,
    /// Inference images/s of any zoo model at its own input size (`--model`, `--batch`).
    Infer,
}

/// Runs `ventral bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let threads = args
        .threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if matches!(args.what, BenchTarget::Gemm | BenchTarget::Conv) {
        peer_threads::ensure(threads)?;
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(crate::WORKER_STACK)
        .build_global()
        .context("could not start the worker threads")?;
    if args.distributed && !matches!(args.what, BenchTarget::Train) {
        bail!("--distributed measures `bench train` only");
    }
    if args.profile && !matches!(args.what, BenchTarget::Train | BenchTarget::Infer) {
        bail!("--profile applies to `bench train` and `bench infer` only");
    }
    if args.candidates && !matches!(args.what, BenchTarget::Gemm) {
        bail!("--candidates applies to `bench gemm` only");
    }
    if args.batch.is_some() && !matches!(args.what, BenchTarget::Infer) {
        bail!("--batch applies to `bench infer` only");
    }
    let cluster = Rc::new(Cluster::join(args.distributed)?);
    let reps = args.reps as usize;
    let result = match args.what {
        BenchTarget::Train if args.distributed => {
            // MPI is called from the main thread only ("funneled").
            train::run(
                &cluster,
                threads,
                &args.models,
                reps,
                args.json,
                args.profile,
            )
        }
        // Measured from a pool thread, as `ventral train` runs (see `crate::on_worker`).
        BenchTarget::Train => crate::on_worker(|| {
            train::run(
                &Rc::new(Cluster::single()),
                threads,
                &args.models,
                reps,
                args.json,
                args.profile,
            )
        }),
        BenchTarget::Peak => crate::on_worker(|| peak::run(threads, args.json)),
        BenchTarget::Gemm if args.candidates => {
            crate::on_worker(|| gemm::run_candidates(threads, &args.sizes, reps, args.json))
        }
        BenchTarget::Gemm => crate::on_worker(|| gemm::run(threads, &args.sizes, reps, args.json)),
        BenchTarget::Conv => crate::on_worker(|| conv::run(threads, reps, args.json)),
        BenchTarget::Infer => crate::on_worker(|| {
            let batch = args.batch.map_or(1, |b| b as usize);
            infer::run(&args.models, batch, threads, reps, args.json, args.profile)
        }),
    };
    finish(&cluster, result)
}
