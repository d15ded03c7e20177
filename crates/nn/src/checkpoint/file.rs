//! Reading and writing safetensors files, atomically.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

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

/// Loads every tensor of a safetensors file (in the file's order: by dtype, then name).
///
/// The file is read whole (its size bounds every allocation; the header's claims are checked
/// against it by the parser) and each tensor is converted from little-endian bytes.
///
/// # Errors
/// [`CheckpointError::Io`] if the file cannot be read; [`CheckpointError::Format`] if it is
/// truncated, corrupt, not safetensors, or holds a dtype other than F32 or I64.
pub fn load(path: &Path) -> Result<StateDict, CheckpointError> {
    let bytes = fs::read(path).map_err(io(path))?;
    let format = |detail: String| CheckpointError::Format {
        path: path.to_path_buf(),
        detail,
    };
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let mut state = StateDict::new();
    let mut named = tensors.tensors();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in named {
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => TensorData::F32(
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            Dtype::I64 => TensorData::I64(
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect(),
            ),
            other => {
                return Err(format(format!(
                    "tensor `{name}` has dtype {other:?}; Ventral reads F32 and I64"
                )));
            }
        };
        let record = TensorRecord::new(&name, view.shape().to_vec(), data)
            .map_err(|e| format(e.to_string()))?;
        state.insert(name, record);
    }
    Ok(state)
}
