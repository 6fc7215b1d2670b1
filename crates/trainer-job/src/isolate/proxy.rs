//! The runtime's side: step hooks that forward every call to the child process.

use std::cell::RefCell;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use burn::tensor::backend::AutodiffBackend;

use super::contract::Contract;
use super::ipc::{read_batch, write_batch};
use super::protocol::{Reply, Request, StepReply, REPLY_PREFIX};
use crate::error::HookResult;
use crate::hooks::{
    CheckpointContext, JobContext, ResumeContext, SampleContext, Scalar, StepContext, StepControl,
    StepHooks, StepResult,
};
use crate::state_dict::StateDict;

/// The environment variable that makes a program the child of a job: its value is the
/// contract file. [`crate::cli::run`] serves the contract when it is set.
pub const CONTRACT_ENV: &str = "TRAINER_ISOLATE_CONTRACT";

/// How the child process ended when it died under the runtime (a crash, an abort, a kill):
/// shared between the hooks and whoever decides on a restart.
#[derive(Debug, Clone, Default)]
pub struct ChildExit(Arc<Mutex<Option<String>>>);

impl ChildExit {
    /// The child's end, in words (`exited with status 134`, `killed by signal 9 (SIGKILL)`), if
    /// it died before the job was over.
    pub fn died(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, how: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(how);
    }
}

struct Connection {
    process: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<String>,
}

/// Step hooks whose state lives in a child process: each call is a `Request` to it. Made by
/// [`ChildHooks::spawn`]; dropping it ends the child.
pub struct ChildHooks {
    connection: RefCell<Connection>,
    contract: Contract,
    exit: ChildExit,
    metric_names: Vec<String>,
}

/// Words for how a process ended.
fn describe(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGBUS => " (SIGBUS)",
                _ => "",
            };
            return format!("was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("ended ({status})"),
    }
}

impl ChildHooks {
    /// Starts `program` (with `args`) as the job's child, handing it the contract at
    /// `contract_path` through [`CONTRACT_ENV`].
    pub fn spawn(
        program: &Path,
        args: &[String],
        contract: Contract,
        contract_path: &Path,
        exit: ChildExit,
    ) -> HookResult<Self> {
        let mut process = Command::new(program)
            .args(args)
            .env(CONTRACT_ENV, contract_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the trainer process {}: {e}",
                    program.display()
                )
            })?;
        let stdout = process.stdout.take().expect("piped");
        let (sender, replies) = channel();
        std::thread::Builder::new()
            .name("child-replies".into())
            .spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match line.strip_prefix(REPLY_PREFIX) {
                        Some(reply) => {
                            if sender.send(reply.to_string()).is_err() {
                                break;
                            }
                        }
                        // The trainer's own prints.
                        None => eprintln!("{line}"),
                    }
                }
            })
            .map_err(|e| format!("cannot start the reply reader: {e}"))?;
        log::info!("trainer process {} started", process.id());
        let stdin = process.stdin.take();
        Ok(Self {
            connection: RefCell::new(Connection {
                process,
                stdin,
                replies,
            }),
            contract,
            exit,
            metric_names: Vec::new(),
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.connection.borrow().process.id()
    }

    /// Makes a call and waits for its reply; a child that is gone is an error saying how it
    /// ended (and recorded in the [`ChildExit`]).
    fn call(&self, request: &Request) -> HookResult<serde_json::Value> {
        let mut connection = self.connection.borrow_mut();
        let line = serde_json::to_string(request).expect("a request serializes");
        let sent = connection.stdin.as_mut().is_some_and(|stdin| {
            writeln!(stdin, "{line}")
                .and_then(|()| stdin.flush())
                .is_ok()
        });
        let reply = if sent {
            connection.replies.recv().ok()
        } else {
            None
        };
        let Some(reply) = reply else {
            // The reply channel closes when the child's standard output does: it is gone.
            drop(connection.stdin.take());
            let how = match connection.process.wait() {
                Ok(status) => describe(status),
                Err(e) => format!("could not be waited for: {e}"),
            };
            let message = format!("the trainer process {} {how}", connection.process.id());
            self.exit.set(how);
            return Err(message.into());
        };
        let reply: Reply = serde_json::from_str(&reply)
            .map_err(|e| format!("the trainer process sent a reply that does not parse: {e}"))?;
        match reply.error {
            Some(error) => Err(error.into()),
            None => Ok(reply.value),
        }
    }

    fn state_path(&self) -> &PathBuf {
        &self.contract.state_path
    }
}

impl Drop for ChildHooks {
    fn drop(&mut self) {
        let connection = self.connection.get_mut();
        if let Some(stdin) = connection.stdin.as_mut() {
            let line = serde_json::to_string(&Request::Exit).expect("a request serializes");
            let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        }
        drop(connection.stdin.take());
        // A child that does not leave within a while is killed: a job never hangs on it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match connection.process.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = connection.process.kill();
                    let _ = connection.process.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl<B: AutodiffBackend> StepHooks<B> for ChildHooks {
    type State = ();
    type Batch = RecordBatch;

    fn setup(&mut self, _ctx: &JobContext<'_>) -> HookResult<()> {
        // The child makes its own context from the same spec, then its state.
        let names = self.call(&Request::Start)?;
        self.metric_names = serde_json::from_value(names).unwrap_or_default();
        Ok(())
    }

    fn configure(&mut self, _ctx: &JobContext<'_>, _device: &B::Device) -> HookResult<()> {
        Ok(())
    }

    fn metric_names(&self) -> Vec<String> {
        self.metric_names.clone()
    }

    fn prepare_batch(
        &mut self,
        _state: &mut (),
        batch: &RecordBatch,
        _device: &B::Device,
    ) -> HookResult<RecordBatch> {
        Ok(batch.clone())
    }

    fn train_step(
        &mut self,
        _state: &mut (),
        batch: RecordBatch,
        ctx: &StepContext,
    ) -> HookResult<StepResult<B>> {
        write_batch(&self.contract.arrow_ipc_path, &batch)?;
        let reply: StepReply = serde_json::from_value(self.call(&Request::Step {
            step: ctx.step,
            epoch: ctx.epoch,
            learning_rate: ctx.learning_rate,
            seed: ctx.seed,
            emits_metrics: ctx.emits_metrics,
        })?)?;
        Ok(StepResult {
            metrics: reply
                .metrics
                .into_iter()
                .map(|(name, value)| (name, Scalar::Host(value)))
                .collect(),
            debug: reply.debug,
            control: StepControl {
                skip_cadence_emit: reply.skip_cadence_emit,
                backoff_seconds: reply.backoff_seconds,
            },
        })
    }

    fn state_dict(&self, _state: &()) -> HookResult<StateDict> {
        self.call(&Request::StateDict)?;
        let bytes = std::fs::read(self.state_path())
            .map_err(|e| format!("{}: {e}", self.state_path().display()))?;
        Ok(rmp_serde::from_slice(&bytes)
            .map_err(|e| format!("the state dict the trainer process wrote: {e}"))?)
    }

    fn load_state_dict(
        &mut self,
        _state: &mut (),
        dict: StateDict,
        _device: &B::Device,
    ) -> HookResult<()> {
        let bytes = rmp_serde::to_vec_named(&dict).map_err(|e| e.to_string())?;
        std::fs::write(self.state_path(), bytes)
            .map_err(|e| format!("{}: {e}", self.state_path().display()))?;
        self.call(&Request::LoadStateDict).map(|_| ())
    }

    fn save_checkpoint(
        &self,
        _state: &(),
        ctx: &CheckpointContext<'_>,
    ) -> HookResult<Option<serde_json::Value>> {
        let extra = self.call(&Request::SaveCheckpoint {
            step: ctx.step,
            output_dir: ctx.output_dir.map(Path::to_path_buf),
            is_final: ctx.is_final,
        })?;
        Ok((!extra.is_null()).then_some(extra))
    }

    fn load_checkpoint(
        &mut self,
        _state: &mut (),
        extra: Option<serde_json::Value>,
        ctx: &ResumeContext<'_>,
    ) -> HookResult<()> {
        self.call(&Request::LoadCheckpoint {
            step: ctx.step,
            checkpoint_file: ctx.checkpoint_file.to_path_buf(),
            checkpoint_dir: ctx.checkpoint_dir.map(Path::to_path_buf),
            extra,
        })
        .map(|_| ())
    }

    fn sample(&mut self, _state: &mut (), ctx: &SampleContext<'_>) -> HookResult<Option<PathBuf>> {
        let file = self.call(&Request::Sample {
            step: ctx.step,
            dir: ctx.dir.to_path_buf(),
        })?;
        Ok(file.as_str().map(PathBuf::from))
    }

    fn mock_batch(&mut self, _ctx: &JobContext<'_>, index: usize) -> HookResult<RecordBatch> {
        self.call(&Request::MockBatch { index })?;
        Ok(read_batch(&self.contract.arrow_ipc_path)?)
    }
}
