use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::jsonl::{kept_lines, read_or_empty, ResumeAt};
use crate::error::{Result, TrainerError};
use crate::fs::write_atomic;
use crate::metric::Split;
use crate::state::MetricValues;

/// `metrics.csv`: one row per metric reading (`step,epoch,split,` then one column per metric
/// name, fixed when the file is opened), for spreadsheets. Appends after a resume like
/// [`EventWriter`](super::EventWriter): rows of steps after the resumed one are dropped first.
#[derive(Debug)]
pub struct MetricsCsv {
    path: PathBuf,
    file: File,
    columns: Vec<String>,
    rows: usize,
}

impl MetricsCsv {
    /// Opens `path` with the metric `columns` for a session that starts at `at` (with
    /// [`ResumeAt::Lines`] counting rows, not the header). A resumed session keeps the file's
    /// header; a header that differs from `columns` is an error.
    pub fn open(path: impl Into<PathBuf>, columns: &[&str], at: ResumeAt) -> Result<Self> {
        let path = path.into();
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let header = format!("step,epoch,split,{}\n", columns.join(","));
        let existing = if at == ResumeAt::Fresh {
            String::new()
        } else {
            read_or_empty(&path)?
        };
        let (first, rows) = existing.split_once('\n').unwrap_or(("", ""));
        if !first.is_empty() && format!("{first}\n") != header {
            return Err(TrainerError::Callback {
                callback: "event_log".into(),
                message: format!(
                    "{} has the header `{first}`, this run writes `{}`",
                    path.display(),
                    header.trim_end()
                ),
            });
        }
        let kept = kept_lines(rows, at, |line| line.split(',').next()?.parse().ok());
        let rows = kept.lines().count();
        write_atomic(&path, format!("{header}{kept}").as_bytes())?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| TrainerError::Io {
                action: "opening",
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            file,
            columns,
            rows,
        })
    }

    /// Writes one row; metrics without a column are left out, columns without a value are empty.
    pub fn write(
        &mut self,
        step: usize,
        epoch: usize,
        split: Split,
        values: &MetricValues,
    ) -> Result<()> {
        let mut row = format!("{step},{epoch},{split}");
        for column in &self.columns {
            row.push(',');
            if let Some(value) = values.get(column) {
                row.push_str(&value.to_string());
            }
        }
        row.push('\n');
        self.file
            .write_all(row.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| TrainerError::Io {
                action: "writing",
                path: self.path.clone(),
                source,
            })?;
        self.rows += 1;
        Ok(())
    }

    /// Rows in the file, the header not counted.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
