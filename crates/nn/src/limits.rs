//! The memory bounds of every file reader, in one place.
//!
//! Every reader of a file Ventral did not write itself (datasets, images, checkpoints) checks
//! the sizes a file declares — against the file's own length first, then against one of
//! these limits — before it allocates anything sized from them. A limit is a default that an
//! environment variable can change (raise it for a larger dataset; lower it to fail fast):
//!
//! | limit | default | variable | bounds |
//! |---|---|---|---|
//! | [`Limits::decompressed_bytes`] | 1 GiB | `VENTRAL_MAX_DECOMPRESSED_BYTES` | a dataset file's bytes after gzip decompression (raw files: their length) |
//! | [`Limits::image_pixels`] | 16,777,216 (4096²) | `VENTRAL_MAX_IMAGE_PIXELS` | width × height of a PNG / JPEG / PGM / PPM image |
//! | [`Limits::classes`] | 10,000 | `VENTRAL_MAX_CLASSES` | the classes of a CSV dataset (integer labels or distinct names) |
//! | [`Limits::checkpoint_bytes`] | 4 GiB | `VENTRAL_MAX_CHECKPOINT_BYTES` | the tensor data of a safetensors file; a PyTorch `.pth`'s tensors (as f32 / i64) and each of its storages |
//!
//! What each reader then holds, at most:
//!
//! - **IDX, CIFAR-10**: the decompressed data once (checked against the header and the
//!   other file's count before it is read), never more than the limit.
//! - **CSV**: the data it parsed (4 bytes per feature, 8 per row for the label), read line by
//!   line, so at most about 3 bytes per decompressed byte; at most `classes` class names.
//! - **Images**: the decoded image (4 bytes per pixel for the PNG decoder, 4 per value as
//!   `f32`), so about 16 bytes per pixel up to `image_pixels`. JPEG (and image folders' PNG)
//!   go through the `image` crate, whose allocation limit is set to 8 bytes per allowed
//!   pixel; an image folder holds one image per decoding thread, plus the batches queued.
//!   The size is read from the header and checked before decoding.
//! - **Safetensors**: the tensors themselves, read one by one (never the whole file at once);
//!   the header is at most 100 MB (the format's own cap) and at most the file.
//! - **PyTorch `.pth`**: the central directory (at most 64 MiB and the file), `data.pkl`
//!   (at most [`MAX_PICKLE_BYTES`](crate::checkpoint::MAX_PICKLE_BYTES), 16 MiB, and
//!   `checkpoint_bytes / 128`) and its parse (at most about 100 bytes per pickle byte: no
//!   opcode copies an object), one storage at a time and the tensors, every view checked
//!   against its storage and the archive entry before anything is allocated.
//!
//! Non-regular files (FIFOs, devices, directories) are refused before they are opened, so a
//! FIFO given as a file cannot block a reader.
//!
//! The variables are read once per process ([`Limits::current`]); a test can apply other
//! limits to one thread for the length of a closure with [`Limits::scoped`].

use std::cell::Cell;
use std::sync::OnceLock;

use thiserror::Error;

/// The sizes a reader accepts; see the [module documentation](self) for what each bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a dataset file after decompression (`VENTRAL_MAX_DECOMPRESSED_BYTES`).
    pub decompressed_bytes: u64,
    /// Pixels (width × height) of an image (`VENTRAL_MAX_IMAGE_PIXELS`).
    pub image_pixels: u64,
    /// Classes of a dataset whose file declares them, such as a CSV (`VENTRAL_MAX_CLASSES`).
    pub classes: usize,
    /// Tensor bytes of a safetensors file (`VENTRAL_MAX_CHECKPOINT_BYTES`).
    pub checkpoint_bytes: u64,
}

/// The environment variable of [`Limits::decompressed_bytes`].
pub const DECOMPRESSED_BYTES_VAR: &str = "VENTRAL_MAX_DECOMPRESSED_BYTES";
/// The environment variable of [`Limits::image_pixels`].
pub const IMAGE_PIXELS_VAR: &str = "VENTRAL_MAX_IMAGE_PIXELS";
/// The environment variable of [`Limits::classes`].
pub const CLASSES_VAR: &str = "VENTRAL_MAX_CLASSES";
/// The environment variable of [`Limits::checkpoint_bytes`].
pub const CHECKPOINT_BYTES_VAR: &str = "VENTRAL_MAX_CHECKPOINT_BYTES";

/// An environment variable holds something other than a positive whole number.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{var}={value:?} is not a positive whole number")]
pub struct InvalidLimit {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
}

impl Limits {
    /// The defaults: 1 GiB decompressed (MNIST's largest file is 47 MB, a CIFAR-10 batch
    /// 31 MB), 4096² pixels, 10,000 classes (ImageNet has 1,000), 4 GiB of tensors (VGG-16's
    /// weights are 528 MB, three times that with Adam's moments).
    pub const DEFAULT: Limits = Limits {
        decompressed_bytes: 1 << 30,
        image_pixels: 1 << 24,
        classes: 10_000,
        checkpoint_bytes: 1 << 32,
    };

    /// The limits in force on this thread: those of an enclosing [`Limits::scoped`], else
    /// the defaults changed by the environment variables (read once per process).
    ///
    /// # Errors
    /// [`InvalidLimit`] if a variable is set to something other than a positive integer.
    pub fn current() -> Result<Limits, InvalidLimit> {
        if let Some(limits) = SCOPED.with(Cell::get) {
            return Ok(limits);
        }
        static FROM_ENV: OnceLock<Result<Limits, InvalidLimit>> = OnceLock::new();
        FROM_ENV
            .get_or_init(|| Limits::from_vars(|var| std::env::var(var).ok()))
            .clone()
    }

    /// The defaults changed by whichever variables `lookup` returns a value for.
    ///
    /// # Errors
    /// [`InvalidLimit`] for a value that is not a positive integer.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Limits, InvalidLimit> {
        let read = |var: &'static str, default: u64| -> Result<u64, InvalidLimit> {
            match lookup(var) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(InvalidLimit { var, value }),
                },
            }
        };
        let d = Limits::DEFAULT;
        Ok(Limits {
            decompressed_bytes: read(DECOMPRESSED_BYTES_VAR, d.decompressed_bytes)?,
            image_pixels: read(IMAGE_PIXELS_VAR, d.image_pixels)?,
            classes: usize::try_from(read(CLASSES_VAR, d.classes as u64)?).unwrap_or(usize::MAX),
            checkpoint_bytes: read(CHECKPOINT_BYTES_VAR, d.checkpoint_bytes)?,
        })
    }

    /// Runs `f` with these limits in force on the calling thread (readers it calls see them
    /// through [`Limits::current`]); the previous ones are restored afterwards, also when `f`
    /// panics.
    pub fn scoped<R>(self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Limits>);
        impl Drop for Restore {
            fn drop(&mut self) {
                SCOPED.with(|s| s.set(self.0));
            }
        }
        let _restore = Restore(SCOPED.with(|s| s.replace(Some(self))));
        f()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

thread_local! {
    static SCOPED: Cell<Option<Limits>> = const { Cell::new(None) };
}

/// Opens `path` for reading after checking that it is a regular file (following symlinks),
/// so that a FIFO, a device or a directory is refused instead of blocking or streaming
/// without end. The check is repeated on the opened handle.
///
/// # Errors
/// The operating system's error, or [`std::io::ErrorKind::InvalidInput`] with the message
/// "not a regular file (a FIFO, device or directory)".
pub fn open_regular(path: &std::path::Path) -> std::io::Result<(std::fs::File, u64)> {
    let not_regular = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory)",
        )
    };
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    Ok((file, meta.len()))
}

/// Reads a small regular file whole (a run's `config.json`, say), refusing a FIFO, device
/// or directory and anything longer than `max_bytes`.
///
/// # Errors
/// Those of [`open_regular`], and [`std::io::ErrorKind::InvalidData`] past `max_bytes`.
pub fn read_regular(path: &std::path::Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let (file, len) = open_regular(path)?;
    let too_long = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than the {max_bytes} bytes such a file may have"),
        )
    };
    if len > max_bytes {
        return Err(too_long());
    }
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_long());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_change_the_defaults_and_reject_nonsense() {
        let limits = Limits::from_vars(|v| (v == CLASSES_VAR).then(|| "70000".to_string()));
        assert_eq!(
            limits,
            Ok(Limits {
                classes: 70_000,
                ..Limits::DEFAULT
            })
        );
        for bad in ["0", "-1", "lots", ""] {
            let err = Limits::from_vars(|v| (v == IMAGE_PIXELS_VAR).then(|| bad.to_string()));
            assert_eq!(
                err.unwrap_err().to_string(),
                format!("VENTRAL_MAX_IMAGE_PIXELS={bad:?} is not a positive whole number")
            );
        }
    }

    #[test]
    fn scoped_limits_apply_inside_and_are_restored() {
        let small = Limits {
            classes: 3,
            ..Limits::DEFAULT
        };
        assert_eq!(small.scoped(|| Limits::current().unwrap().classes), 3);
        let outer = Limits::current().unwrap();
        let _ = std::panic::catch_unwind(|| small.scoped(|| panic!("inside")));
        assert_eq!(Limits::current().unwrap(), outer);
    }
}
