//! The peer's thread count. matrixmultiply reads `MATMUL_NUM_THREADS` from the environment
//! once, on its first product, and has no other setting; changing a running process's
//! environment is unsound once other threads exist (and `unsafe` under edition 2024, which
//! this crate forbids). So when the variable does not already say `--threads`, the command
//! runs itself again with it set, and exits with the child's status.

use anyhow::{Context, Result};

/// The variable matrixmultiply reads.
const VARIABLE: &str = "MATMUL_NUM_THREADS";

/// Returns if this process's environment already gives the peer `threads` threads; else
/// runs this command again with the variable set and exits with its status (the child
/// prints its own output and errors).
///
/// # Errors
/// If this executable cannot be started again.
pub fn ensure(threads: usize) -> Result<()> {
    if std::env::var(VARIABLE).ok().as_deref() == Some(threads.to_string().as_str()) {
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find this executable to run the peer")?;
    let status = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(VARIABLE, threads.to_string())
        .status()
        .with_context(|| format!("cannot run {} again for the peer", exe.display()))?;
    std::process::exit(status.code().unwrap_or(1))
}
