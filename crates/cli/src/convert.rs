//! `ventral convert`: a checkpoint PyTorch wrote (`torch.save`, `.pth`) or any checkpoint
//! Ventral reads, written out as a safetensors state dict.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use ventral_nn::checkpoint::{self, DType};

/// Arguments of `ventral convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The checkpoint to read: a `torch.save` file (a state dict, or a checkpoint dict with
    /// its tensors under `state_dict` or `model`) or safetensors; the format is told by the
    /// file's first bytes, not its name. Nothing in it is executed.
    input: PathBuf,
    /// The safetensors file to write (atomically: an existing file is replaced whole or not
    /// at all).
    output: PathBuf,
}

/// Reads `args.input` and writes its tensors to `args.output` as safetensors (float32 and
/// int64, PyTorch's key names), then prints what was written.
///
/// # Errors
/// The reader's error naming the input (corrupt, refused or too large), an output that is
/// the input itself, or a failed write.
pub fn run(args: ConvertArgs) -> Result<()> {
    let state = checkpoint::load(&args.input)?;
    if let (Ok(a), Ok(b)) = (args.input.canonicalize(), args.output.canonicalize())
        && a == b
    {
        bail!(
            "{}: the output would replace the input; name another file",
            args.output.display()
        );
    }
    checkpoint::save(&args.output, &state)?;
    let counters = state
        .iter()
        .filter(|(_, r)| r.dtype() == DType::I64)
        .count();
    println!(
        "{}: {} tensors ({} int64), {} values",
        args.output.display(),
        state.len(),
        counters,
        state.numel()
    );
    Ok(())
}
