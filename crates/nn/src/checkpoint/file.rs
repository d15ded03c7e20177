//! Reading and writing safetensors files, atomically.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, Metadata, TensorView};

use crate::limits::{Limits, open_regular};

use super::error::CheckpointError;
use super::state_dict::{StateDict, TensorData, TensorRecord};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` so that readers see either the old file or the complete new one:
/// a temporary file in the same directory, flushed to disk, renamed over `path`, and the
/// directory flushed so the rename itself survives a crash.
///
/// # Errors
/// [`CheckpointError::Io`] naming the file if any step fails (the old file is untouched).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io(path))?;
        // Flushing the directory makes the rename durable; not every platform allows it.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Saves a state dict as a safetensors file (little-endian, with `{"format": "pt"}` metadata
/// as PyTorch's `safetensors.torch.save_file` writes), atomically.
///
/// # Errors
/// [`CheckpointError::Io`] if the file cannot be written; [`CheckpointError::Format`] if
/// serialisation fails.
pub fn save(path: &Path, state: &StateDict) -> Result<(), CheckpointError> {
    let bytes: Vec<(String, Vec<u8>, Dtype, Vec<usize>)> = state
        .iter()
        .map(|(name, record)| {
            let (raw, dtype) = match record.data() {
                TensorData::F32(v) => {
                    (v.iter().flat_map(|x| x.to_le_bytes()).collect(), Dtype::F32)
                }
                TensorData::I64(v) => {
                    (v.iter().flat_map(|x| x.to_le_bytes()).collect(), Dtype::I64)
                }
            };
            (name.to_string(), raw, dtype, record.shape().to_vec())
        })
        .collect();
    let format_error = |e: safetensors::SafeTensorError| CheckpointError::Format {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let views = bytes
        .iter()
        .map(|(name, raw, dtype, shape)| {
            Ok((name.as_str(), TensorView::new(*dtype, shape.clone(), raw)?))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(format_error)?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let serialized = safetensors::serialize(views, Some(metadata)).map_err(format_error)?;
    write_atomically(path, &serialized)
}

/// The largest header the safetensors format allows (its reference parser's cap).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Loads every tensor of a checkpoint: a safetensors file (sorted by name) or a PyTorch
/// `torch.save` zip archive (in its state dict's order), told apart by the first bytes.
///
/// A safetensors file is never read whole. Its 8-byte length and JSON header are read first
/// and validated against the file's length (the header within the file and at most 100 MB;
/// the tensors' offsets contiguous, each the size its shape and dtype need, together exactly
/// the rest of the file) and against [`Limits::checkpoint_bytes`]; then the tensors are read
/// one after the other, each straight into its values. Memory is the tensors themselves plus
/// the parsed header (a few times the header's size) and a 64 KiB buffer. A PyTorch archive
/// is read as the `pth` module describes (an allow-list of pickle globals, every size
/// checked before it is allocated). A FIFO, device or directory is refused before it is
/// opened.
///
/// # Errors
/// [`CheckpointError::Io`] if the file cannot be read or is not a regular file;
/// [`CheckpointError::Format`] if it is truncated, corrupt, not safetensors, or holds a dtype
/// other than F32 or I64; [`CheckpointError::Pth`] for a PyTorch archive that cannot be
/// read; [`CheckpointError::TooLarge`] past the limit.
pub fn load(path: &Path) -> Result<StateDict, CheckpointError> {
    let (mut file, file_len) = open_regular(path).map_err(io(path))?;
    let mut head = Vec::with_capacity(super::pth::SNIFF_BYTES);
    (&mut file)
        .take(super::pth::SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io(path))?;
    if super::pth::sniff(&head) {
        return super::pth::load(path, file, file_len, &head);
    }
    file.seek(SeekFrom::Start(0)).map_err(io(path))?;
    load_safetensors(path, file, file_len)
}

/// The safetensors half of [`load`], on the opened `file` of `file_len` bytes.
fn load_safetensors(path: &Path, file: File, file_len: u64) -> Result<StateDict, CheckpointError> {
    let limit = Limits::current()
        .map_err(CheckpointError::Limit)?
        .checkpoint_bytes;
    let format = |detail: String| CheckpointError::Format {
        path: path.to_path_buf(),
        detail,
    };
    let mut reader = BufReader::new(file);
    if file_len < 8 {
        return Err(format(format!(
            "{file_len} bytes, too few for the 8-byte header length"
        )));
    }
    let mut n = [0u8; 8];
    reader.read_exact(&mut n).map_err(io(path))?;
    let n = u64::from_le_bytes(n);
    if n > file_len - 8 || n > MAX_HEADER_BYTES {
        return Err(format(format!(
            "the header length {n} exceeds the {} bytes that follow it (or the format's {MAX_HEADER_BYTES}-byte cap)",
            file_len - 8
        )));
    }
    // `n <= file_len`, which is in memory's address range.
    let mut header = vec![0u8; n as usize];
    reader.read_exact(&mut header).map_err(io(path))?;
    let metadata: Metadata =
        serde_json::from_slice(&header).map_err(|e| format(format!("bad header: {e}")))?;
    drop(header);
    let data_len = metadata.data_len() as u64;
    let present = file_len - 8 - n;
    if data_len != present {
        return Err(format(format!(
            "the header describes {data_len} bytes of tensor data, the file holds {present}"
        )));
    }
    if data_len > limit {
        return Err(CheckpointError::TooLarge {
            path: path.to_path_buf(),
            bytes: data_len,
            limit,
        });
    }
    let mut entries = Vec::new();
    // Offset order is file order: each tensor's bytes follow the previous one's.
    for name in metadata.offset_keys() {
        let Some(info) = metadata.info(&name) else {
            continue;
        };
        let bytes = info.data_offsets.1 - info.data_offsets.0;
        let data = match info.dtype {
            Dtype::F32 => TensorData::F32(
                read_values(&mut reader, bytes, f32::from_le_bytes).map_err(io(path))?,
            ),
            Dtype::I64 => TensorData::I64(
                read_values(&mut reader, bytes, i64::from_le_bytes).map_err(io(path))?,
            ),
            other => {
                return Err(format(format!(
                    "tensor `{name}` has dtype {other:?}; Ventral reads F32 and I64"
                )));
            }
        };
        let record = TensorRecord::new(&name, info.shape.clone(), data)
            .map_err(|e| format(e.to_string()))?;
        entries.push((name, record));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(StateDict::from_unique(entries))
}

/// Reads `bytes` bytes of little-endian values of `N` bytes each, converting them 64 KiB at
/// a time into a vector reserved once.
fn read_values<T, const N: usize>(
    reader: &mut impl Read,
    bytes: usize,
    from_le: fn([u8; N]) -> T,
) -> std::io::Result<Vec<T>> {
    const CHUNK: usize = 1 << 16;
    let mut out = Vec::new();
    out.try_reserve_exact(bytes / N)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?;
    let mut buf = vec![0u8; CHUNK.min(bytes)];
    let mut left = bytes;
    while left > 0 {
        // CHUNK is a multiple of every N, so only the last chunk can be short.
        let k = left.min(CHUNK);
        reader.read_exact(&mut buf[..k])?;
        out.extend(
            buf[..k]
                .chunks_exact(N)
                .map(|c| from_le(c.try_into().expect("N bytes"))),
        );
        left -= k;
    }
    Ok(out)
}
