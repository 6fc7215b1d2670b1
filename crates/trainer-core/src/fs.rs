//! Files written so that a crash leaves the old content or the new, never a mix, and files read
//! only when they are what they should be (regular, bounded).

use std::io::Write;
use std::path::Path;

use crate::error::{Result, TrainerError};

/// How the temporary files of [`write_atomic`] start (they end in `.tmp`).
pub const TEMPORARY_PREFIX: &str = ".checkpoint-";

/// Reads a regular file of at most `cap` bytes; anything else is an error naming the path.
pub fn read_regular_file(path: &Path, cap: u64, action: &'static str) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, len) = open_regular_file(path, cap, action)?;
    let mut bytes = Vec::with_capacity(len as usize);
    // `take` keeps a file that grows while it is read within the cap.
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(|source| TrainerError::Io {
            action,
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

/// Opens a regular file of at most `cap` bytes and returns it with its length; anything else
/// is an error naming the path.
pub fn open_regular_file(
    path: &Path,
    cap: u64,
    action: &'static str,
) -> Result<(std::fs::File, u64)> {
    let io = |source| TrainerError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if metadata.len() > cap {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} bytes, more than the {cap} read at most", metadata.len()),
        )));
    }
    Ok((file, metadata.len()))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename over
/// `path`, fsync of the folder. On any failure `path` keeps its old content (or stays absent)
/// and the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| {
        file.write_all(bytes).map_err(|source| TrainerError::Io {
            action: "writing",
            path: path.to_path_buf(),
            source,
        })
    })
}

/// [`write_atomic`] for content that `write` streams into the temporary file (which it may
/// also seek in): nothing but the file holds the bytes. The same guarantees hold when `write`
/// fails: `path` keeps its old content and the temporary file is removed.
pub fn write_atomic_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut std::fs::File) -> Result<()>,
{
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let io = |action: &'static str, at: &Path| {
        let at = at.to_path_buf();
        move |source| TrainerError::Io {
            action,
            path: at,
            source,
        }
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(TEMPORARY_PREFIX)
        .suffix(".tmp")
        .tempfile_in(folder)
        .map_err(io("creating a temporary file in", folder))?;
    write(temporary.as_file_mut())?;
    temporary
        .as_file()
        .sync_all()
        .map_err(io("syncing", temporary.path()))?;
    temporary.persist(path).map_err(|e| TrainerError::Io {
        action: "renaming a temporary file onto",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    sync_folder(folder).map_err(io("syncing folder", folder))
}

/// Makes a rename durable. Folders can be opened and synced on Unix; elsewhere the rename is
/// left to the file system.
fn sync_folder(folder: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(folder)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = folder;
        Ok(())
    }
}
