//! The `dir` sink: a copy of each file in a folder, and a manifest of what is there.

use std::io::Write;
use std::path::{Path, PathBuf};

use trainer_core::checkpoint::write_atomic_with;

use super::{ArtifactSink, Digest, Upload};

/// The manifest a [`DirSink`] keeps in its folder: one JSON line per file put there
/// (`name`, `bytes`, `sha256`, `step`, `kind`, `time_unix_ms`).
pub const MANIFEST_FILE: &str = "manifest.jsonl";

/// Copies each file to `folder/<name>`, atomically (a temporary file, fsync, rename), and
/// appends a line to `folder/manifest.jsonl`. A name already there with the same SHA-256 is
/// left as it is and not listed twice.
#[derive(Debug)]
pub struct DirSink {
    folder: PathBuf,
}

impl DirSink {
    /// A sink into `folder` (created when the first file comes).
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        Self {
            folder: folder.into(),
        }
    }

    fn target(&self, name: &str) -> Result<PathBuf, String> {
        // Names are the runtime's own, but a file name from a trainer's companion folder
        // passes through them: nothing may climb out of the folder.
        let relative = Path::new(name);
        if name.is_empty()
            || relative.is_absolute()
            || relative
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!("{name:?} is not a plain relative name"));
        }
        Ok(self.folder.join(relative))
    }
}

impl ArtifactSink for DirSink {
    fn upload(&mut self, upload: &Upload, digest: &Digest) -> Result<(), String> {
        let target = self.target(&upload.name)?;
        if target.is_file()
            && Digest::of_file(&target).is_ok_and(|there| there.sha256 == digest.sha256)
        {
            return Ok(());
        }
        let parent = target.parent().unwrap_or(&self.folder);
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        write_atomic_with(&target, |out| {
            let mut source = std::fs::File::open(&upload.path).map_err(|source| {
                trainer_core::TrainerError::Io {
                    action: "reading",
                    path: upload.path.clone(),
                    source,
                }
            })?;
            std::io::copy(&mut source, out).map_err(|source| trainer_core::TrainerError::Io {
                action: "copying into",
                path: target.clone(),
                source,
            })?;
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        // The copy is checked against the digest taken before: a file that changed meanwhile
        // is not reported as uploaded.
        let copied = Digest::of_file(&target).map_err(|e| e.to_string())?;
        if copied != *digest {
            return Err(format!(
                "{} changed while it was copied (sha256 {} became {})",
                upload.path.display(),
                digest.sha256,
                copied.sha256
            ));
        }
        let line = serde_json::json!({
            "name": upload.name,
            "bytes": digest.bytes,
            "sha256": digest.sha256,
            "step": upload.step,
            "kind": upload.kind.as_str(),
            "time_unix_ms": trainer_core::unix_ms_now(),
        });
        let manifest = self.folder.join(MANIFEST_FILE);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&manifest)
            .and_then(|mut file| writeln!(file, "{line}").and_then(|()| file.sync_all()))
            .map_err(|e| format!("cannot append to {}: {e}", manifest.display()))
    }
}
