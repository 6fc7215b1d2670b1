use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::Event;
use crate::checkpoint::write_atomic;
use crate::error::{Result, TrainerError};

/// Appends events to a JSON-lines file, one line per event, flushed as written.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: File,
}

impl EventWriter {
    /// Opens `path` for a session that starts at optimizer step `step`. At step 0 (a fresh
    /// run) the file starts empty. Otherwise (a resume) the lines of steps after `step` are
    /// dropped — the earlier session wrote them after the checkpoint now resumed from, and this
    /// session writes them again — and so is a last line cut short by a kill.
    pub fn open(path: impl Into<PathBuf>, step: usize) -> Result<Self> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| TrainerError::Io { action: "creating folder", path: parent.to_path_buf(), source })?;
        }
        let kept = if step == 0 { String::new() } else { lines_up_to(&path, step, |line| serde_json::from_str::<Event>(line).ok().map(|e| e.step))? };
        write_atomic(&path, kept.as_bytes())?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| TrainerError::Io { action: "opening", path: path.clone(), source })?;
        Ok(Self { path, file })
    }

    /// Writes one event as one line.
    pub fn write(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event).expect("events serialize");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| TrainerError::Io { action: "writing", path: self.path.clone(), source })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The complete lines of `path` whose step (as `step_of` reads it; lines it cannot read are
/// dropped) is at most `step`; empty when there is no file.
pub(super) fn lines_up_to(path: &Path, step: usize, step_of: impl Fn(&str) -> Option<usize>) -> Result<String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(source) => return Err(TrainerError::Io { action: "reading", path: path.to_path_buf(), source }),
    };
    let mut kept = String::new();
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|source| TrainerError::Io { action: "reading", path: path.to_path_buf(), source })?;
        // A line without its newline is the tail of a write a kill cut short.
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        if step_of(line.trim_end()).is_some_and(|s| s <= step) {
            kept.push_str(&line);
        }
    }
    Ok(kept)
}
