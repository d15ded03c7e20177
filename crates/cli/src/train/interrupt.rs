//! Ctrl-C during training: the first press asks the loop to finish its step, save and exit
//! (code 130); a second press exits at once (the checkpoints on disk stay whole, as every
//! file is written atomically).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::errors::INTERRUPTED_EXIT;

/// Whether Ctrl-C was pressed, or the step budget of `--stop-after-steps` is spent.
pub struct Interrupt {
    pressed: Arc<AtomicBool>,
    budget: Option<u64>,
    steps: u64,
}

impl Interrupt {
    /// Installs the Ctrl-C handler (SIGINT, and SIGTERM on Unix is left alone) and counts
    /// steps against `budget`.
    ///
    /// # Errors
    /// If the handler cannot be installed.
    pub fn install(budget: Option<u64>) -> Result<Self> {
        let pressed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&pressed);
        ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                eprintln!("\nventral: interrupted again; exiting without saving");
                std::process::exit(i32::from(INTERRUPTED_EXIT));
            }
            eprintln!(
                "\nventral: Ctrl-C: finishing the current step and saving (press again to quit at once)"
            );
        })
        .context("could not install the Ctrl-C handler")?;
        Ok(Self {
            pressed,
            budget,
            steps: 0,
        })
    }

    /// Records one finished step.
    pub fn step_done(&mut self) {
        self.steps += 1;
    }

    /// Whether the run should save and stop now.
    pub fn requested(&self) -> bool {
        self.pressed.load(Ordering::SeqCst) || self.budget.is_some_and(|b| self.steps >= b)
    }
}
