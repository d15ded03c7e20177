//! Ctrl-C during training: the first press sets the trainer's stop flag (it finishes its
//! step, saves and returns; the command exits with code 130); a second press exits at once
//! (the checkpoints on disk stay whole, as every file is written atomically).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use crate::errors::INTERRUPTED_EXIT;

/// Installs the Ctrl-C handler (SIGINT; SIGTERM on Unix is left alone) that sets `stop`.
///
/// # Errors
/// If the handler cannot be installed.
pub fn install(stop: Arc<AtomicBool>) -> Result<()> {
    ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            eprintln!("\nventral: interrupted again; exiting without saving");
            std::process::exit(i32::from(INTERRUPTED_EXIT));
        }
        eprintln!(
            "\nventral: Ctrl-C: finishing the current step and saving (press again to quit at once)"
        );
    })
    .context("could not install the Ctrl-C handler")
}
