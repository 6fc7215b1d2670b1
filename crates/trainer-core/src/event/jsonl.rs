use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Event;
use crate::error::{Result, TrainerError};
use crate::fs::write_atomic;

/// Where a session's writing starts in an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeAt {
    /// A fresh run: the file starts empty.
    Fresh,
    /// A resume from a checkpoint taken when the file held this many lines (records): later
    /// lines were written after the checkpoint and are dropped.
    Lines(usize),
    /// A resume from a checkpoint of this optimizer step that does not say how many lines the
    /// file held: lines of later steps are dropped.
    Step(usize),
}

/// Appends events to a JSON-lines file, one line per event, flushed as written.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl EventWriter {
    /// Opens `path` for a session that starts at `at`: fresh, or after a resume, keeping only
    /// the lines written before the checkpoint resumed from (the earlier session wrote the rest
    /// after it, and this session writes them again). A last line cut short by a kill is
    /// dropped too.
    pub fn open(path: impl Into<PathBuf>, at: ResumeAt) -> Result<Self> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| TrainerError::Io {
                action: "creating folder",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let kept = kept_lines(&read_or_empty(&path)?, at, |line| {
            serde_json::from_str::<Event>(line).ok().map(|e| e.step)
        });
        let lines = kept.lines().count();
        write_atomic(&path, kept.as_bytes())?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| TrainerError::Io {
                action: "opening",
                path: path.clone(),
                source,
            })?;
        Ok(Self { path, file, lines })
    }

    /// Lines in the file.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Writes one event as one line.
    pub fn write(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event).expect("events serialize");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| TrainerError::Io {
                action: "writing",
                path: self.path.clone(),
                source,
            })?;
        self.lines += 1;
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The complete lines of `text` that a session starting at `at` keeps: none when fresh, the
/// first N, or those whose step (as `step_of` reads it; lines it cannot read are dropped) is at
/// most the given step. A last line without its newline is the tail of a write a kill cut short:
/// it is never kept.
pub(super) fn kept_lines(
    text: &str,
    at: ResumeAt,
    step_of: impl Fn(&str) -> Option<usize>,
) -> String {
    let complete = text
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'));
    match at {
        ResumeAt::Fresh => String::new(),
        ResumeAt::Lines(n) => complete.take(n).collect(),
        ResumeAt::Step(step) => complete
            .filter(|line| step_of(line.trim_end()).is_some_and(|s| s <= step))
            .collect(),
    }
}

/// The text of `path`, empty when there is no file.
pub(super) fn read_or_empty(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(TrainerError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        }),
    }
}
