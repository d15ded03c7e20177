//! How `ventral` reports failure: one line on stderr and a non-zero exit, whatever went
//! wrong — a bad flag, a bad file, an interrupted run, even a bug.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ArgMatches;
use clap::error::ErrorKind;
use clap::parser::ValueSource;

/// The exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT: u8 = 130;

/// A training run stopped by Ctrl-C after saving its state.
#[derive(Debug)]
pub struct Interrupted {
    /// The run directory holding the saved state.
    pub dir: PathBuf,
    /// Steps completed.
    pub step: u64,
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interrupted after step {}; saved the training state, continue with `ventral train --resume {}`",
            self.step,
            self.dir.display()
        )
    }
}

impl std::error::Error for Interrupted {}

/// Prints `err` and its causes on one line (never a backtrace, even with `RUST_BACKTRACE`
/// set) and picks the exit code: 130 after Ctrl-C, 1 otherwise.
pub fn report(err: &anyhow::Error) -> ExitCode {
    // Like `{err:#}` (which never prints a backtrace), but a cause whose text the message
    // already quotes (many library errors print their source inline) is not repeated.
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    eprintln!("ventral: {line}");
    if err.downcast_ref::<Interrupted>().is_some() {
        ExitCode::from(INTERRUPTED_EXIT)
    } else {
        ExitCode::FAILURE
    }
}

/// Prints a command-line error as one line (clap's message with its list of possible values,
/// without the usage block and tips) and exits 2, clap's code for usage errors. `--help` and
/// `--version` print as usual.
pub fn report_usage_error(err: clap::Error) -> ExitCode {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit();
    }
    let text = err.render().to_string();
    let mut parts = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() || line.starts_with("tip:") {
            continue;
        }
        parts.push(line.strip_prefix("error: ").unwrap_or(line));
    }
    eprintln!("ventral: {}", parts.join(" "));
    ExitCode::from(2)
}

/// The ids of the arguments given explicitly on the command line (not defaults).
pub fn given_on_command_line(matches: &ArgMatches) -> Vec<String> {
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .collect()
}

/// Replaces the default panic message (and its backtrace, which `RUST_BACKTRACE` would
/// add) with one line asking for a bug report: a panic is a bug in Ventral, never the
/// user's fault, and should not bury the screen.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        // `ventral … | head`: the reader left; stop quietly, as a killed-by-SIGPIPE tool would.
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "ventral: internal error{place}: {}; please report this",
            message.replace('\n', " ")
        );
    }));
}

/// Ends a job on `cluster` after `result`. On one process: `result`. In an MPI job: an
/// interrupted run ([`Interrupted`], saved by rank 0) is reported by rank 0 alone once every
/// process has arrived; any other error is printed with the rank and ends every process of
/// the job at once (`MPI_Abort`), since the others may be waiting in a collective that will
/// never complete.
///
/// # Errors
/// `result`'s error, on a single process or rank 0 of an interrupted run.
pub fn finish(cluster: &ventral_train::Cluster, result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Ok(()) => {
            cluster.barrier();
            Ok(())
        }
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
            cluster.barrier();
            if cluster.is_leader() { Err(e) } else { Ok(()) }
        }
        Err(e) if cluster.size() == 1 => Err(e),
        Err(e) => {
            let e = e.context(format!("rank {} of {}", cluster.rank(), cluster.size()));
            report(&e);
            cluster.abort(1)
        }
    }
}
