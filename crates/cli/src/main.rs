//! `ventral`: train, evaluate, inspect and benchmark Ventral models from the command line.
#![forbid(unsafe_code)]

mod bench;
mod eval;
mod report;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ventral: fast, trustworthy deep learning on ordinary CPUs.
#[derive(Debug, Parser)]
#[command(name = "ventral", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a zoo model on a dataset (defaults: LeNet-5 on MNIST).
    Train(train::TrainArgs),
    /// Accuracy, loss and confusion matrix of saved weights on a test set.
    Eval(eval::EvalArgs),
    /// Measure kernel speed against peers run in the same process.
    Bench(bench::BenchArgs),
}

/// Runs `f` with a global rayon pool of `threads` threads (default: one per core).
fn with_threads(
    threads: Option<u16>,
    f: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.into())
            .build_global()
            .map_err(|e| anyhow::anyhow!("could not start {n} worker threads: {e}"))?;
    }
    f()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => with_threads(args.threads, || train::run(args)),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ventral: {err:#}");
            ExitCode::FAILURE
        }
    }
}
