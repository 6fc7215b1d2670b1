//! A step checkpoint's companion folder: files a program writes beside the checkpoint (a LoRA
//! adapter, safetensors weights, a tokenizer) in `epoch-EEEE-step-SSSSSS.artifacts/`. The save
//! lists them in the index with their checkpoint, retention deletes them with it, and a resume
//! finds them beside the file it loads.
//!
//! A program fills a [`StagedCompanion`] (a temporary folder in the checkpoint folder) and
//! commits it before it submits the snapshot, so that a companion folder is always whole; a
//! folder whose checkpoint file never came (a crash between the two) is removed when the
//! checkpoint folder is next opened.

use std::path::{Path, PathBuf};

use super::names::is_step_file_name;
use crate::error::{Result, TrainerError};
use crate::fs::TEMPORARY_PREFIX;

/// The suffix of a companion folder's name.
const SUFFIX: &str = ".artifacts";

/// Files listed in one companion folder, at most (a listing is bounded like every other input).
pub const MAX_COMPANION_FILES: usize = 10_000;

/// Folder levels listed below a companion folder, at most.
const MAX_COMPANION_DEPTH: usize = 16;

/// The companion folder's name of step checkpoint `file` (`epoch-0001-step-000500.ckpt` gives
/// `epoch-0001-step-000500.artifacts`); `None` for a name that is not a step checkpoint's.
pub fn companion_dir_name(file: &str) -> Option<String> {
    is_step_file_name(file).then(|| format!("{}{SUFFIX}", file.trim_end_matches(".ckpt")))
}

/// The companion folder of step checkpoint `file` in `dir`, if it exists as a real folder (a
/// symlink in its place is ignored: nothing outside the checkpoint folder is read through it).
pub fn companion_dir(dir: &Path, file: &str) -> Option<PathBuf> {
    let path = dir.join(companion_dir_name(file)?);
    std::fs::symlink_metadata(&path)
        .is_ok_and(|m| m.is_dir())
        .then_some(path)
}

/// The regular files in `file`'s companion folder, as `/`-separated paths relative to it,
/// sorted; empty when there is no folder. Symlinks are skipped.
pub fn list_companion(dir: &Path, file: &str) -> Result<Vec<String>> {
    let Some(root) = companion_dir(dir, file) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    list_into(&root, "", 0, &mut files)?;
    files.sort();
    Ok(files)
}

fn list_into(folder: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) -> Result<()> {
    let io = |source| TrainerError::Io {
        action: "listing checkpoint artifacts in",
        path: folder.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(folder).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            log::warn!(
                "{}: skipping a file whose name is not UTF-8",
                folder.display()
            );
            continue;
        };
        let relative = format!("{prefix}{name}");
        if kind.is_file() {
            if out.len() >= MAX_COMPANION_FILES {
                return Err(TrainerError::Io {
                    action: "listing checkpoint artifacts in",
                    path: folder.to_path_buf(),
                    source: std::io::Error::other(format!("more than {MAX_COMPANION_FILES} files")),
                });
            }
            out.push(relative);
        } else if kind.is_dir() && depth < MAX_COMPANION_DEPTH {
            list_into(&entry.path(), &format!("{relative}/"), depth + 1, out)?;
        }
    }
    Ok(())
}

/// Removes `file`'s companion folder, if there is one (a symlink in its place is left alone).
pub fn remove_companion(dir: &Path, file: &str) {
    if let Some(path) = companion_dir(dir, file) {
        if let Err(e) = std::fs::remove_dir_all(&path) {
            log::warn!("could not remove {}: {e}", path.display());
        }
    }
}

/// Removes companion folders whose checkpoint file is not there, and staged ones a killed
/// process left.
pub(crate) fn remove_orphan_companions(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let orphan = name
            .strip_suffix(SUFFIX)
            .map(|stem| format!("{stem}.ckpt"))
            .is_some_and(|file| is_step_file_name(&file) && !dir.join(&file).exists());
        let staged = name.starts_with(TEMPORARY_PREFIX) && name.ends_with(SUFFIX);
        if is_dir && (orphan || staged) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A companion folder being written: a temporary folder in the checkpoint folder that
/// [`commit`](StagedCompanion::commit) renames into place (dropped uncommitted, it is removed).
#[derive(Debug)]
pub struct StagedCompanion {
    staged: Option<tempfile::TempDir>,
    target: PathBuf,
}

impl StagedCompanion {
    /// Starts the companion folder of step checkpoint `file` in `dir`.
    pub fn new(dir: &Path, file: &str) -> Result<Self> {
        let name = companion_dir_name(file).ok_or_else(|| TrainerError::Io {
            action: "staging checkpoint artifacts for",
            path: dir.join(file),
            source: std::io::Error::other("not a step checkpoint's name"),
        })?;
        std::fs::create_dir_all(dir).map_err(|source| TrainerError::Io {
            action: "creating checkpoint folder",
            path: dir.to_path_buf(),
            source,
        })?;
        let staged = tempfile::Builder::new()
            .prefix(TEMPORARY_PREFIX)
            .suffix(SUFFIX)
            .tempdir_in(dir)
            .map_err(|source| TrainerError::Io {
                action: "creating a temporary folder in",
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Self {
            staged: Some(staged),
            target: dir.join(name),
        })
    }

    /// The folder to write into.
    pub fn path(&self) -> &Path {
        self.staged.as_ref().expect("present until commit").path()
    }

    /// Puts the folder in place (replacing an older one of the same checkpoint) and returns
    /// its path; an empty folder is removed instead and gives `None`.
    pub fn commit(mut self) -> Result<Option<PathBuf>> {
        let staged = self.staged.take().expect("present until commit");
        let empty = std::fs::read_dir(staged.path())
            .map(|mut d| d.next().is_none())
            .unwrap_or(true);
        if empty {
            return Ok(None);
        }
        if std::fs::symlink_metadata(&self.target).is_ok() {
            std::fs::remove_dir_all(&self.target).map_err(|source| TrainerError::Io {
                action: "replacing checkpoint artifacts",
                path: self.target.clone(),
                source,
            })?;
        }
        let staged = staged.keep();
        std::fs::rename(&staged, &self.target).map_err(|source| TrainerError::Io {
            action: "putting checkpoint artifacts in place at",
            path: self.target.clone(),
            source,
        })?;
        Ok(Some(self.target.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "epoch-0000-step-000010.ckpt";

    #[test]
    fn a_staged_folder_is_committed_listed_and_removed_with_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            companion_dir_name(FILE).unwrap(),
            "epoch-0000-step-000010.artifacts"
        );
        assert_eq!(companion_dir_name("best-valid-loss.ckpt"), None);
        assert_eq!(companion_dir_name("../x.ckpt"), None);
        let staged = StagedCompanion::new(dir.path(), FILE).unwrap();
        std::fs::create_dir(staged.path().join("adapter")).unwrap();
        std::fs::write(staged.path().join("adapter/weights.safetensors"), b"w").unwrap();
        std::fs::write(staged.path().join("config.json"), b"{}").unwrap();
        let path = staged.commit().unwrap().unwrap();
        assert_eq!(path, dir.path().join("epoch-0000-step-000010.artifacts"));
        assert_eq!(
            list_companion(dir.path(), FILE).unwrap(),
            ["adapter/weights.safetensors", "config.json"]
        );
        // No checkpoint file beside it: an orphan, removed when the folder is opened.
        remove_orphan_companions(dir.path());
        assert!(companion_dir(dir.path(), FILE).is_none());
        // With its file, it stays; `remove_companion` removes it.
        std::fs::write(dir.path().join(FILE), b"ckpt").unwrap();
        let staged = StagedCompanion::new(dir.path(), FILE).unwrap();
        std::fs::write(staged.path().join("a"), b"a").unwrap();
        staged.commit().unwrap();
        remove_orphan_companions(dir.path());
        assert!(companion_dir(dir.path(), FILE).is_some());
        remove_companion(dir.path(), FILE);
        assert!(companion_dir(dir.path(), FILE).is_none());
        assert!(dir.path().join(FILE).exists());
    }

    #[test]
    fn an_empty_or_abandoned_stage_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let staged = StagedCompanion::new(dir.path(), FILE).unwrap();
        assert_eq!(staged.commit().unwrap(), None);
        let staged = StagedCompanion::new(dir.path(), FILE).unwrap();
        std::fs::write(staged.path().join("half"), b"h").unwrap();
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_in_place_of_the_folder_is_neither_listed_nor_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), b"p").unwrap();
        std::os::unix::fs::symlink(
            outside.path(),
            dir.path().join("epoch-0000-step-000010.artifacts"),
        )
        .unwrap();
        assert!(list_companion(dir.path(), FILE).unwrap().is_empty());
        remove_companion(dir.path(), FILE);
        remove_orphan_companions(dir.path());
        assert!(outside.path().join("precious").exists());
    }
}
