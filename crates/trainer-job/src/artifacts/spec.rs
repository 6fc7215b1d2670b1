//! The job spec's `artifacts` section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a job's artifacts go (`"artifacts"` in the job spec), e.g.
/// `{"sink": "dir", "path": "/mnt/share/run-1"}` or
/// `{"sink": "command", "argv": ["aws", "s3", "cp", "..."], "retry": {"attempts": 5}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "sink", rename_all = "snake_case", deny_unknown_fields)]
pub enum ArtifactsSpec {
    /// Copies each file into `path/<name>` (atomically) and appends a line to
    /// `path/manifest.jsonl`; relative paths are relative to the spec file's folder.
    Dir {
        /// The folder.
        path: PathBuf,
        /// Attempts and backoff.
        #[serde(default)]
        retry: RetryPolicy,
    },
    /// Runs `argv` once per file, with the file's path and metadata in `TRAINER_ARTIFACT_*`
    /// environment variables; exit status 0 is success.
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
        /// Seconds one run may take before it is killed and counted as failed (default 600).
        #[serde(default = "default_timeout")]
        timeout_seconds: f64,
        /// Attempts and backoff.
        #[serde(default)]
        retry: RetryPolicy,
    },
}

fn default_timeout() -> f64 {
    600.0
}

/// How often a failed upload is tried again, and how long to wait in between.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Tries per file, the first included (default 3).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The wait before the second try; it doubles for each further one (default 1).
    #[serde(default = "default_backoff")]
    pub backoff_seconds: f64,
}

fn default_attempts() -> u32 {
    3
}

fn default_backoff() -> f64 {
    1.0
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            backoff_seconds: default_backoff(),
        }
    }
}

/// The most tries per file.
pub const MAX_ATTEMPTS: u32 = 100;
/// The longest backoff or command timeout, in seconds.
pub const MAX_SECONDS: f64 = 86_400.0;

impl ArtifactsSpec {
    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        match self {
            ArtifactsSpec::Dir { retry, .. } | ArtifactsSpec::Command { retry, .. } => retry,
        }
    }

    /// Checks what serde cannot; the error names the field.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let seconds = |field: &'static str, v: f64| {
            if v.is_finite() && (0.0..=MAX_SECONDS).contains(&v) {
                Ok(())
            } else {
                Err((
                    field,
                    format!("{v} is not a number of seconds in 0..={MAX_SECONDS}"),
                ))
            }
        };
        if !(1..=MAX_ATTEMPTS).contains(&self.retry().attempts) {
            return Err((
                "artifacts.retry.attempts",
                format!("{}: give 1 to {MAX_ATTEMPTS}", self.retry().attempts),
            ));
        }
        seconds(
            "artifacts.retry.backoff_seconds",
            self.retry().backoff_seconds,
        )?;
        match self {
            ArtifactsSpec::Dir { path, .. } if path.as_os_str().is_empty() => {
                Err(("artifacts.path", "must name a folder".into()))
            }
            ArtifactsSpec::Command { argv, .. } if argv.first().is_none_or(String::is_empty) => {
                Err((
                    "artifacts.argv",
                    "must name a program (its first element)".into(),
                ))
            }
            ArtifactsSpec::Command {
                timeout_seconds, ..
            } => seconds("artifacts.timeout_seconds", *timeout_seconds),
            ArtifactsSpec::Dir { .. } => Ok(()),
        }
    }
}
