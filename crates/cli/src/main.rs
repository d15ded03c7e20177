//! `ventral`: train, evaluate, inspect and benchmark Ventral models from the command line.
// One exception, in `allocator.rs`: setting an option of the allocator through its C API.
#![deny(unsafe_code)]

mod allocator;
mod bench;
mod convert;
mod data_dir;
mod data_tools;
mod data_verify;
mod errors;
mod eval;
mod gradcheck;
mod graph;
mod infer;
mod report;
mod train;
mod visualize;
mod zoo;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    #[command(after_long_help = train::RESUME_HELP)]
    // Boxed: its many flags make it far larger than the other commands' arguments.
    Train(Box<train::TrainArgs>),
    /// Accuracy, loss and confusion matrix of saved weights on a test set.
    Eval(eval::EvalArgs),
    /// Class probabilities of saved weights for PNG or PGM images.
    Predict(infer::PredictArgs),
    /// Run saved weights in eval mode on a tensor stored in a safetensors file.
    Forward(infer::ForwardArgs),
    /// Check every op's and every layer's gradient against finite differences.
    Gradcheck(gradcheck::GradcheckArgs),
    /// Write the computational graph of one forward and backward pass as Graphviz DOT.
    Graph(graph::GraphArgs),
    /// The model zoo, one line per model.
    Models(zoo::ModelsArgs),
    /// A model's per-layer table: output shapes, parameters, multiply-accumulates.
    Summary(zoo::SummaryArgs),
    /// Dataset files: check them, compute normalisation statistics, export image folders.
    Data(data_verify::DataArgs),
    /// Measure kernel speed against peers run in the same process.
    Bench(bench::BenchArgs),
    /// Convert a PyTorch checkpoint (torch.save, .pth) to a safetensors state dict.
    Convert(convert::ConvertArgs),
    /// Pictures: first-layer filters and activation maps, decision boundaries in training.
    Visualize(visualize::VisualizeArgs),
}

/// Runs `f` with a global rayon pool of `threads` threads (default: one per core).
///
/// Unless `on_main_thread` (MPI's "funneled" level lets only the main thread call MPI), `f`
/// itself runs on one of the pool's threads: then every parallel kernel starts its work on the
/// calling thread, and a 1-thread pool runs it inline, instead of handing each one across
/// threads and waking a worker (that hand-off cost LeNet-sized layers 20-40 % at 1 thread).
fn with_threads(
    threads: Option<u16>,
    on_main_thread: bool,
    f: impl FnOnce() -> anyhow::Result<()> + Send,
) -> anyhow::Result<()> {
    let count = threads.map_or(0, usize::from); // 0: one per core
    rayon::ThreadPoolBuilder::new()
        .num_threads(count)
        .stack_size(WORKER_STACK)
        .build_global()
        .map_err(|e| anyhow::anyhow!("could not start {count} worker threads: {e}"))?;
    if on_main_thread {
        return f();
    }
    on_worker(f)
}

/// Stack of each pool thread: the main thread's 8 MiB, since commands run on pool threads.
pub(crate) const WORKER_STACK: usize = 8 << 20;

/// Runs `f` on a thread of the global rayon pool and waits for it.
pub(crate) fn on_worker<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let mut out = None;
    rayon::scope(|_| out = Some(f()));
    out.expect("rayon::scope runs its body before returning")
}

fn main() -> ExitCode {
    allocator::tune();
    errors::install_panic_hook();
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return errors::report_usage_error(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return errors::report_usage_error(e),
    };
    let result = match cli.command {
        Command::Train(args) => {
            let given = matches
                .subcommand_matches("train")
                .map(errors::given_on_command_line)
                .unwrap_or_default();
            with_threads(args.threads, args.distributed, || train::run(*args, &given))
        }
        Command::Eval(args) => eval::run(args),
        Command::Models(args) => zoo::list(args),
        Command::Summary(args) => zoo::describe(args),
        Command::Predict(args) => infer::predict(args),
        Command::Forward(args) => infer::forward(args),
        Command::Gradcheck(args) => gradcheck::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Data(args) => data_verify::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Visualize(args) => visualize::run(args),
        Command::Convert(args) => convert::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => errors::report(&err),
    }
}
