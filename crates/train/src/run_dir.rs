//! A run directory's housekeeping: the temporary files of writes that were killed.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// Whether `name` is a temporary file that Ventral's atomic writes leave behind when killed:
/// `.NAME.tmp-PID` (checkpoints and JSON, [`ventral_nn::checkpoint::write_atomically`]),
/// `.NAME.tmp.EXT` (pictures) and `.ventral-write-test-PID` (the writability probe). The
/// process id, when there is one, is returned so that a live writer's file can be spared.
fn temp_owner(name: &str) -> Option<Option<u32>> {
    let rest = name.strip_prefix('.')?;
    if let Some(pid) = rest.strip_prefix("ventral-write-test-") {
        return pid.parse().ok().map(Some);
    }
    if let Some((_, pid)) = rest.rsplit_once(".tmp-") {
        return pid.parse().ok().map(Some);
    }
    let (_, ext) = rest.rsplit_once(".tmp.")?;
    (!ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric())).then_some(None)
}

/// Removes the temporary files of killed writes from `dir` (`.NAME.tmp-PID`,
/// `.NAME.tmp.EXT`, `.ventral-write-test-PID`), except those of this process and of
/// processes still running, and returns what it removed.
/// Nothing else is touched.
///
/// # Errors
/// [`TrainError::Io`] if the directory cannot be listed or a stale file removed.
pub fn remove_stale_temps(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { what, path, source }
    };
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("could not list", dir))? {
        let entry = entry.map_err(io("could not list", dir))?;
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        let live = owner.is_some_and(|pid| {
            pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
        });
        if live || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        std::fs::remove_file(&path).map_err(io("could not remove the stale file", &path))?;
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_temporary_files_of_dead_writers_are_removed() {
        let dir = std::env::temp_dir().join(format!("ventral-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // PIDs above the kernel's maximum (4194304) belong to no process.
        let stale = [
            ".train_state.safetensors.tmp-99999999",
            ".last.safetensors.tmp-99999998",
            ".loss.tmp.png",
            ".ventral-write-test-99999997",
        ];
        let mine = format!(".config.json.tmp-{}", std::process::id());
        let kept = [
            "train_state.safetensors",
            "loss.png",
            ".hidden",
            ".notes.tmp-abc",
            "x.tmp-99999999",
            mine.as_str(),
        ];
        for name in stale.iter().chain(&kept) {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        let mut removed: Vec<String> = remove_stale_temps(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        let mut expected: Vec<String> = stale.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(removed, expected);
        for name in kept {
            assert!(dir.join(name).exists(), "{name} was removed");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
