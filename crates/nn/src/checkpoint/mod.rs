//! Checkpoints: named tensors in the safetensors format, with PyTorch `state_dict()` key names
//! and shapes, so weights move between Ventral and PyTorch in both directions. [`load`] also
//! reads PyTorch's own `torch.save` files (`.pth`), natively and without executing anything
//! (the `pth` module); the format is told by the file's first bytes, never its name.
//!
//! Files are written atomically (a temporary file in the same directory, flushed to disk, then
//! renamed over the target), so a crash or kill during a save never destroys the previous
//! checkpoint. Loading is strict: [`StateDict::check_matches`] reports every missing key,
//! unexpected key, wrong shape and wrong dtype by name in one error. [`load`] validates the
//! header against the file's length and
//! [`Limits::checkpoint_bytes`](crate::limits::Limits::checkpoint_bytes) and then reads the
//! tensors one by one, so memory is the tensors themselves, never the file twice.

mod error;
mod file;
mod pth;
mod state_dict;

pub use error::CheckpointError;
pub use file::{load, save, write_atomically};
pub use pth::{MAX_PICKLE_BYTES, PthError};
pub use state_dict::{DType, StateDict, TensorData, TensorRecord};
