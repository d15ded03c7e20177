//! Opening a dataset file, raw or gzip-compressed, with every read bounded by what the file
//! can actually hold.
//!
//! The readers never size a buffer from a header alone. Before reading `n` bytes they ask
//! [`Input::read_exact`], which refuses when `n` exceeds what is left: the remaining file
//! length for a raw file; for a gzip file, the most its compressed bytes can expand to
//! (deflate's maximum ratio, 1032:1) capped at [`Limits::decompressed_bytes`]. The buffer for
//! a claim that passed is reserved once and touched only where data arrives, so a lying
//! header costs address space, not memory, and an honest one is read without a growing copy
//! (a doubling buffer briefly held 1.5x MNIST's 47 MB of pixels, which the allocator then
//! kept). CSV files are read line by line ([`Input::read_line`]) under the same bound.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::error::{DataError, Result};
use crate::limits::{Limits, open_regular};

/// The default of the largest (decompressed) dataset file the readers accept, 1 GiB: the
/// default of [`Limits::decompressed_bytes`], which `VENTRAL_MAX_DECOMPRESSED_BYTES` changes.
///
/// It is a safety net against corrupt or hostile files, well above the largest supported
/// dataset file (a CIFAR-10 batch is 30.7 MB, MNIST's training images 47 MB).
pub const MAX_FILE_BYTES: u64 = Limits::DEFAULT.decompressed_bytes;

/// Deflate's maximum compression ratio: a 258-byte match costs at least 2 bits, so one
/// compressed byte never yields more than 1032 bytes (zlib's `deflateBound` reasoning).
const DEFLATE_MAX_RATIO: u64 = 1032;

/// A dataset file opened for sequential, bounded reading.
pub(crate) struct Input {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    file_len: u64,
    gzip: bool,
    consumed: u64,
    limit: u64,
}

impl Input {
    /// Opens `path`, detecting gzip by its magic bytes `1f 8b` (not by its name).
    ///
    /// # Errors
    /// [`DataError::Io`] if it cannot be opened, [`DataError::Empty`] for a zero-byte file,
    /// [`DataError::NotGzip`] for a `.gz` name without the gzip magic,
    /// [`DataError::TooLarge`] for a raw file above [`Limits::decompressed_bytes`], and
    /// [`DataError::Io`] for a FIFO, device or directory (refused before it is opened).
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let io_err = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let limit = Limits::current()?.decompressed_bytes;
        let (mut file, file_len) = open_regular(path).map_err(io_err)?;
        if file_len == 0 {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
            });
        }
        let mut magic = [0u8; 2];
        let got = fill_into(&mut file, &mut magic).map_err(io_err)?;
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let gzip = got == 2 && magic == [0x1f, 0x8b];
        let named_gz = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
        if named_gz && !gzip {
            return Err(DataError::NotGzip {
                path: path.to_path_buf(),
            });
        }
        if !gzip && file_len > limit {
            return Err(DataError::TooLarge {
                path: path.to_path_buf(),
                limit,
            });
        }
        let buffered = BufReader::new(file);
        let reader: Box<dyn BufRead> = if gzip {
            Box::new(BufReader::new(MultiGzDecoder::new(buffered)))
        } else {
            Box::new(buffered)
        };
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            file_len,
            gzip,
            consumed: 0,
            limit,
        })
    }

    /// The file's path, for error messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The most (decompressed) bytes the rest of the file can still yield.
    fn bound(&self) -> u64 {
        let total = if self.gzip {
            self.file_len
                .saturating_mul(DEFLATE_MAX_RATIO)
                .min(self.limit)
        } else {
            self.file_len
        };
        total.saturating_sub(self.consumed)
    }

    /// Reads exactly `n` bytes; `what` names them in errors (e.g. `"60000 images of 28x28"`).
    ///
    /// # Errors
    /// Before allocating: [`DataError::Truncated`] if a raw file has fewer than `n` bytes
    /// left, [`DataError::BadHeader`] if a gzip file is too small to expand to `n` bytes,
    /// [`DataError::TooLarge`] past [`Limits::decompressed_bytes`]. While reading:
    /// [`DataError::Truncated`] if the data ends early, [`DataError::Gzip`] or
    /// [`DataError::Io`] if reading fails.
    pub(crate) fn read_exact(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if n > self.bound() {
            let wanted = self.consumed.saturating_add(n);
            // A raw file's length refutes the claim outright (raw files past the limit were
            // refused at open); a gzip file may be too small to expand to the claim, or the
            // claim may be possible but over the limit.
            return Err(if !self.gzip {
                DataError::Truncated {
                    path: self.path.clone(),
                    what: what.to_string(),
                    expected: wanted,
                    found: self.file_len,
                }
            } else if wanted <= self.file_len.saturating_mul(DEFLATE_MAX_RATIO) {
                DataError::TooLarge {
                    path: self.path.clone(),
                    limit: self.limit,
                }
            } else {
                DataError::BadHeader {
                    path: self.path.clone(),
                    what: format!(
                        "{what} needs {wanted} bytes, but a {}-byte gzip file decompresses to at most {} bytes",
                        self.file_len,
                        self.file_len.saturating_mul(DEFLATE_MAX_RATIO)
                    ),
                }
            });
        }
        let before = self.consumed;
        // `n <= bound()`, at most the file's length or the decompressed limit: it fits usize.
        let buf = self.fill(n, usize::try_from(n).unwrap_or(0))?;
        if (buf.len() as u64) < n {
            return Err(DataError::Truncated {
                path: self.path.clone(),
                what: what.to_string(),
                expected: before + n,
                found: before + buf.len() as u64,
            });
        }
        Ok(buf)
    }

    /// Reads everything that is left (a raw file's rest is reserved at once; a gzip file's
    /// buffer grows as data arrives, up to the limit).
    ///
    /// # Errors
    /// [`DataError::TooLarge`] past [`Limits::decompressed_bytes`], [`DataError::Gzip`] or
    /// [`DataError::Io`] if reading fails.
    pub(crate) fn read_rest(&mut self) -> Result<Vec<u8>> {
        let bound = self.bound();
        let reserve = if self.gzip { 0 } else { bound };
        let buf = self.fill(
            bound.saturating_add(1),
            usize::try_from(reserve).unwrap_or(0),
        )?;
        if buf.len() as u64 > bound {
            return Err(self.too_large());
        }
        Ok(buf)
    }

    /// Reads the next line (up to and including `\n`, or to the end) into `line`, replacing
    /// its content; returns `false` at the end of the file. Lines count towards the same
    /// bound as every other read, so a file without newlines cannot grow `line` past it.
    ///
    /// # Errors
    /// [`DataError::TooLarge`] past [`Limits::decompressed_bytes`], [`DataError::Gzip`] or
    /// [`DataError::Io`] if reading fails.
    pub(crate) fn read_line(&mut self, line: &mut Vec<u8>) -> Result<bool> {
        line.clear();
        let bound = self.bound();
        let result = (&mut self.reader)
            .take(bound.saturating_add(1))
            .read_until(b'\n', line);
        if let Err(source) = result {
            let path = self.path.clone();
            return Err(if self.gzip {
                DataError::Gzip { path, source }
            } else {
                DataError::Io { path, source }
            });
        }
        if line.len() as u64 > bound {
            return Err(self.too_large());
        }
        self.consumed += line.len() as u64;
        Ok(!line.is_empty())
    }

    /// The error for a file past the limit (raw files past it were refused at open, so this
    /// is a gzip file expanding past it, or a raw file that grew while being read).
    fn too_large(&self) -> DataError {
        DataError::TooLarge {
            path: self.path.clone(),
            limit: self.limit,
        }
    }

    /// Checks that nothing follows what was read (for gzip this also verifies the CRC).
    ///
    /// # Errors
    /// [`DataError::TrailingData`] if more bytes follow; [`DataError::Gzip`] for a bad
    /// trailer or CRC.
    pub(crate) fn expect_end(&mut self) -> Result<()> {
        let expected = self.consumed;
        let extra = if self.gzip {
            self.fill(1, 1)?.len() as u64
        } else {
            self.file_len - expected
        };
        if extra > 0 {
            return Err(DataError::TrailingData {
                path: self.path.clone(),
                expected,
            });
        }
        Ok(())
    }

    /// Reads up to `n` bytes into a buffer with `reserve` bytes of capacity reserved up front
    /// (untouched until written; it grows past that only if more data arrives).
    fn fill(&mut self, n: u64, reserve: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        if buf.try_reserve_exact(reserve).is_err() {
            return Err(self.too_large());
        }
        if let Err(source) = (&mut self.reader).take(n).read_to_end(&mut buf) {
            let path = self.path.clone();
            return Err(if self.gzip {
                DataError::Gzip { path, source }
            } else {
                DataError::Io { path, source }
            });
        }
        self.consumed += buf.len() as u64;
        Ok(buf)
    }
}

/// Reads into `buf` until it is full or the reader ends; returns the bytes read.
fn fill_into(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
