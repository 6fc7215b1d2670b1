//! The `command` sink: a user command per file (a cloud CLI, `rsync`, a script).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{ArtifactSink, Digest, Upload};

/// Runs `argv` once per file with these environment variables: `TRAINER_ARTIFACT_PATH` (the
/// file), `TRAINER_ARTIFACT_NAME` (its name at the sink, e.g.
/// `checkpoints/epoch-0001-step-000500.ckpt`), `TRAINER_ARTIFACT_SHA256`,
/// `TRAINER_ARTIFACT_BYTES`, `TRAINER_ARTIFACT_STEP`, `TRAINER_ARTIFACT_KIND`. Exit status 0 is
/// success; a run longer than the timeout is killed and counts as a failure. The command must
/// accept the same name twice (a resumed job's upload of a file it may have sent before).
#[derive(Debug)]
pub struct CommandSink {
    argv: Vec<String>,
    timeout: Duration,
}

impl CommandSink {
    /// A sink running `argv` (non-empty) with `timeout` per run.
    pub fn new(argv: Vec<String>, timeout: Duration) -> Self {
        Self { argv, timeout }
    }
}

impl ArtifactSink for CommandSink {
    fn upload(&mut self, upload: &Upload, digest: &Digest) -> Result<(), String> {
        let (program, args) = self.argv.split_first().ok_or("the command is empty")?;
        let mut child = Command::new(program)
            .args(args)
            .env("TRAINER_ARTIFACT_PATH", &upload.path)
            .env("TRAINER_ARTIFACT_NAME", &upload.name)
            .env("TRAINER_ARTIFACT_SHA256", &digest.sha256)
            .env("TRAINER_ARTIFACT_BYTES", digest.bytes.to_string())
            .env("TRAINER_ARTIFACT_STEP", upload.step.to_string())
            .env("TRAINER_ARTIFACT_KIND", upload.kind.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {program:?}: {e}"))?;
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{program:?} ran past its {:.0} s timeout and was killed",
                        self.timeout.as_secs_f64()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("waiting for {program:?}: {e}")),
            }
        };
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read;
            let _ = pipe.by_ref().take(2048).read_to_string(&mut stderr);
        }
        Err(format!(
            "{program:?} exited with {status}{}",
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", stderr.trim())
            }
        ))
    }
}
