//! The child's side: serving the runtime's calls with the registered trainer's hooks.

use std::io::{BufRead, Write};

use burn::tensor::{backend::AutodiffBackend, ElementConversion};

use super::contract::Contract;
use super::ipc::{read_batch, write_batch};
use super::protocol::{Reply, Request, StepReply, REPLY_PREFIX};
use crate::error::{HookResult, JobError, Result};
use crate::hooks::{
    CheckpointContext, ResumeContext, SampleContext, Scalar, StepContext, StepHooks,
};
use crate::runtime::JobData;
use crate::settings::ResolvedJob;
use crate::state_dict::StateDict;

/// Serves the calls of the runtime that started this process (JSON lines on standard input,
/// replies on standard output) with `hooks`, until it says the job is over or goes away.
/// Interrupt and terminate signals are left to the runtime, which checkpoints and then ends
/// the child; a panic in the hooks ends the process (exit status 101), which the runtime
/// reports.
pub fn serve<B: AutodiffBackend, H: StepHooks<B>>(
    mut hooks: H,
    job: &ResolvedJob,
    device: B::Device,
    contract: &Contract,
) -> Result<()> {
    #[cfg(unix)]
    {
        // A Ctrl-C reaches the whole process group: the runtime decides what it means.
        let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, ignored.clone()).map_err(|e| {
                JobError::Setting {
                    name: "signals".into(),
                    message: e.to_string(),
                }
            })?;
        }
    }
    let data = JobData::open(&job.spec)?;
    let mut state: Option<H::State> = None;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let request: Request = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(e) => {
                reply(
                    &mut stdout,
                    Err(format!("a call that does not parse: {e}").into()),
                )?;
                continue;
            }
        };
        if matches!(request, Request::Exit) {
            break;
        }
        let result = handle(
            &mut hooks, &mut state, request, job, &data, &device, contract,
        );
        reply(&mut stdout, result)?;
    }
    Ok(())
}

fn reply(stdout: &mut std::io::Stdout, result: HookResult<serde_json::Value>) -> Result<()> {
    let reply = match result {
        Ok(value) => Reply { error: None, value },
        Err(e) => Reply {
            error: Some(e.to_string()),
            value: serde_json::Value::Null,
        },
    };
    let line = serde_json::to_string(&reply).expect("a reply serializes");
    writeln!(stdout, "{REPLY_PREFIX}{line}")
        .and_then(|()| stdout.flush())
        .map_err(|source| JobError::Io {
            action: "replying to the runtime on",
            path: "standard output".into(),
            source,
        })
}

fn handle<B: AutodiffBackend, H: StepHooks<B>>(
    hooks: &mut H,
    state: &mut Option<H::State>,
    request: Request,
    job: &ResolvedJob,
    data: &JobData,
    device: &B::Device,
    contract: &Contract,
) -> HookResult<serde_json::Value> {
    use serde_json::{json, Value};
    if let Request::Start = request {
        let ctx = data.context(&job.spec);
        hooks
            .setup(&ctx)
            .map_err(|e| format!("step hook `setup`: {e}"))?;
        *state = Some(
            hooks
                .configure(&ctx, device)
                .map_err(|e| format!("step hook `configure`: {e}"))?,
        );
        return Ok(json!(hooks.metric_names()));
    }
    if let Request::MockBatch { index } = request {
        let ctx = data.context(&job.spec);
        let batch = hooks.mock_batch(&ctx, index)?;
        write_batch(&contract.arrow_ipc_path, &batch)?;
        return Ok(Value::Null);
    }
    let state = state.as_mut().ok_or("the runtime called before `start`")?;
    Ok(match request {
        Request::Step {
            step,
            epoch,
            learning_rate,
            seed,
            emits_metrics,
        } => {
            let batch = read_batch(&contract.arrow_ipc_path)?;
            let prepared = hooks.prepare_batch(state, &batch, device)?;
            let ctx = StepContext {
                step,
                epoch,
                learning_rate,
                seed,
                emits_metrics,
                // A distributed job runs in process (the spec refuses it isolated).
                peer: None,
            };
            let result = hooks.train_step(state, prepared, &ctx)?;
            let metrics = result
                .metrics
                .into_iter()
                .map(|(name, value)| {
                    let value = match value {
                        Scalar::Host(v) => v,
                        Scalar::Device(t) => t.into_scalar().elem::<f64>(),
                    };
                    (name, value)
                })
                .collect();
            serde_json::to_value(StepReply {
                metrics,
                debug: result.debug,
                skip_cadence_emit: result.control.skip_cadence_emit,
                backoff_seconds: result.control.backoff_seconds,
            })?
        }
        Request::StateDict => {
            let dict = hooks.state_dict(state)?;
            let bytes = rmp_serde::to_vec_named(&dict).map_err(|e| e.to_string())?;
            std::fs::write(&contract.state_path, bytes)
                .map_err(|e| format!("{}: {e}", contract.state_path.display()))?;
            Value::Null
        }
        Request::LoadStateDict => {
            let bytes = std::fs::read(&contract.state_path)
                .map_err(|e| format!("{}: {e}", contract.state_path.display()))?;
            let dict: StateDict = rmp_serde::from_slice(&bytes).map_err(|e| e.to_string())?;
            hooks.load_state_dict(state, dict, device)?;
            Value::Null
        }
        Request::SaveCheckpoint {
            step,
            output_dir,
            is_final,
        } => {
            let ctx = CheckpointContext {
                step,
                output_dir: output_dir.as_deref(),
                is_final,
            };
            hooks.save_checkpoint(state, &ctx)?.unwrap_or(Value::Null)
        }
        Request::LoadCheckpoint {
            step,
            checkpoint_file,
            checkpoint_dir,
            extra,
        } => {
            let ctx = ResumeContext {
                step,
                checkpoint_file: &checkpoint_file,
                checkpoint_dir: checkpoint_dir.as_deref(),
            };
            hooks.load_checkpoint(state, extra, &ctx)?;
            Value::Null
        }
        Request::Sample { step, dir } => {
            let file = hooks.sample(state, &SampleContext { step, dir: &dir })?;
            file.map_or(Value::Null, |f| json!(f))
        }
        Request::Start | Request::MockBatch { .. } | Request::Exit => Value::Null,
    })
}
