//! `ventral`: train, evaluate, inspect and benchmark Ventral models from the command line.
#![forbid(unsafe_code)]

mod bench;
// `train` (the next step) is the first user; until it lands only the tests call these.
#[allow(dead_code)]
mod report;

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
    /// Measure kernel speed against peers run in the same process.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
