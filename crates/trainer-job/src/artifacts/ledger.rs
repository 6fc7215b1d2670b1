//! What a run has uploaded, across its sessions: a JSON-lines file in the run folder, so that
//! a resumed job does not upload a name again with the same bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The ledger's file name, beside the run's events file.
pub const LEDGER_FILE: &str = "uploads.jsonl";

/// The largest ledger read (a longer one is damaged: it is read no further).
const MAX_LEDGER_BYTES: u64 = 256 << 20;

/// Names uploaded so far and the SHA-256 of their bytes.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    path: Option<PathBuf>,
    done: BTreeMap<String, String>,
}

impl Ledger {
    /// Reads the ledger at `path` (none yet: empty). Lines that do not parse are skipped with
    /// a warning: at worst a file is uploaded again, under the same name.
    pub fn open(path: &Path) -> Self {
        let mut done = BTreeMap::new();
        match trainer_core::checkpoint::read_regular_file(path, MAX_LEDGER_BYTES, "reading") {
            Ok(bytes) => {
                for line in String::from_utf8_lossy(&bytes).lines() {
                    let entry: Option<(String, String)> =
                        serde_json::from_str::<serde_json::Value>(line)
                            .ok()
                            .and_then(|v| {
                                Some((
                                    v["name"].as_str()?.to_string(),
                                    v["sha256"].as_str()?.to_string(),
                                ))
                            });
                    match entry {
                        Some((name, sha256)) => {
                            done.insert(name, sha256);
                        }
                        None => {
                            log::warn!("{}: skipping a line that does not parse", path.display())
                        }
                    }
                }
            }
            Err(e) if path.exists() => log::warn!("upload ledger not read: {e}"),
            Err(_) => {}
        }
        Self {
            path: Some(path.to_path_buf()),
            done,
        }
    }

    /// Whether `name` was uploaded with these bytes.
    pub fn has(&self, name: &str, sha256: &str) -> bool {
        self.done.get(name).is_some_and(|s| s == sha256)
    }

    /// Records an upload (appending to the file; a failed append is logged, not fatal).
    pub fn record(&mut self, name: &str, sha256: &str, bytes: u64, step: usize) {
        self.done.insert(name.to_string(), sha256.to_string());
        let Some(path) = &self.path else { return };
        let line =
            serde_json::json!({"name": name, "sha256": sha256, "bytes": bytes, "step": step});
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{line}"));
        if let Err(e) = appended {
            log::warn!("cannot append to {}: {e}", path.display());
        }
    }
}
