//! Training metrics as JSON lines: one object per line, appended and flushed as they happen,
//! so a crashed run still leaves everything up to its last step.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// Appends JSON objects to a `.jsonl` file.
pub struct MetricsWriter {
    out: BufWriter<File>,
}

impl MetricsWriter {
    /// Opens `path` for appending (creating it), or truncates it when `fresh`.
    ///
    /// # Errors
    /// If the file cannot be opened.
    pub fn open(path: &Path, fresh: bool) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(!fresh)
            .write(true)
            .truncate(fresh)
            .open(path)
            .with_context(|| format!("could not open {}", path.display()))?;
        Ok(Self {
            out: BufWriter::new(file),
        })
    }

    /// Writes one object as a line and flushes it.
    ///
    /// # Errors
    /// If the write fails.
    pub fn write(&mut self, record: &Value) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(())
    }
}
