//! Trains an MLP on the bundled digits data (1797 8×8 images) and reports test accuracy.
//!
//! ```text
//! cargo run --release --example mlp
//! cargo run --release --example mlp --features wgpu -- --device wgpu
//! ```
//!
//! Shows progress on stderr (bars on a terminal, a few lines per epoch otherwise), then prints
//! one JSON line with the result on stdout.
//!
//! With `--run-dir DIR`, the run writes `DIR/events.jsonl` and `DIR/metrics.csv`, and
//! checkpoints go to `DIR/checkpoints` (at the end, on an error, and every
//! `--checkpoint-every N` steps); `--resume` continues from the latest one there, or starts
//! fresh when there is none. A run killed at any moment and resumed ends with the same
//! `weights_sha256` as one never interrupted.

#[path = "support/mod.rs"]
mod support;
// The `trainer` CLI's SVG charts, for the range test's curve.
#[allow(dead_code)]
#[path = "../src/cli/plot.rs"]
mod plot;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use clap::Parser;
use sha2::{Digest, Sha256};

trainer::program_allocator!();
use support::digits::{self, DigitsBatcher};
use support::flags::{positive_finite, probability, seconds};
use support::mlp::MlpConfig;
use trainer::core::engine::LrFinderConfig;
use trainer::core::weights::{load_weights, Layout};
use trainer::prelude::*;
use trainer_core::checkpoint::latest_in;
use trainer_core::parallel::NodeConfig;

/// Train an MLP on the digits data.
#[derive(Debug, Clone, Parser)]
struct Args {
    /// Training epochs.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    epochs: u32,
    /// Items per batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    batch_size: u32,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 2e-3, value_parser = positive_finite)]
    lr: f64,
    /// Seed for the split, the weights, the data order and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// `cpu` (flex when compiled in, else ndarray), `flex`, `ndarray`, `wgpu`, `wgpu:N` or `auto`
    /// (TRAINER_DEVICE overrides it).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Hidden layer widths, comma-separated.
    #[arg(long, default_value = "128", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1 << 16))]
    hidden: Vec<u32>,
    /// Dropout after each hidden layer.
    #[arg(long, default_value_t = 0.1, value_parser = probability)]
    dropout: f64,
    /// Folder for the run's outputs: `events.jsonl`, `metrics.csv`, TensorBoard files in
    /// `DIR/tensorboard`, checkpoints in `DIR/checkpoints`, the final JSON line in
    /// `DIR/result.json`.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Also checkpoint every N optimizer steps (needs --run-dir).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: Option<u64>,
    /// Keep only the newest N step checkpoints (default: keep all; needs --run-dir).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keep_last: Option<u64>,
    /// Continue from the latest checkpoint in `DIR/checkpoints` if there is one (needs --run-dir).
    #[arg(long)]
    resume: bool,
    /// Stop when the validation loss has not improved for N epochs, and keep the best weights.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    patience: Option<u32>,
    /// Data file (`.csv` or `.csv.gz`); the bundled digits by default.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Initialise the model from a safetensors or PyTorch (`.pt`) file (PyTorch's or burn's
    /// layout, told by the file's metadata or the weights' shapes) before training.
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Train data-parallel with N replicas in step (threads on the chosen device), each taking
    /// `--batch-size` items per batch: an optimizer step sees N times as many.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    replicas: u32,
    /// The devices of replicas 1, 2, ..., comma-separated (`wgpu:1,wgpu:2`; rank 0 takes
    /// --device): sets --replicas to one more than their count. A wgpu adapter named again
    /// gives a logical device of its own (one adapter, e.g. Mesa's software Vulkan, then holds
    /// N devices). Without it every replica shares --device.
    #[arg(long, value_delimiter = ',')]
    replica_devices: Vec<String>,
    /// Nodes (machines) of a data-parallel run; with more than 1, give --node-rank and
    /// --orchestrator (`trainer orchestrator --port P` runs one).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    nodes: u32,
    /// This node's place among --nodes, from 0.
    #[arg(long, default_value_t = 0)]
    node_rank: u32,
    /// The orchestrator: ws://HOST:PORT.
    #[arg(long)]
    orchestrator: Option<String>,
    /// Where the other nodes reach this one: ws://HOST:PORT (default ws://127.0.0.1:PORT with
    /// PORT = the orchestrator's + 1 + --node-rank).
    #[arg(long)]
    node_address: Option<String>,
    /// Seconds to wait for the other replicas and nodes (registering, each all-reduce) before
    /// the run fails.
    #[arg(long, default_value = "600", value_parser = seconds)]
    peer_timeout: Duration,
    /// Stop after this many seconds of training (the time of a resumed run counts), after the
    /// batch during which it ran out.
    #[arg(long, value_parser = seconds)]
    max_time: Option<Duration>,
    /// Run a learning-rate range test instead of training: print the suggested rate, and with
    /// `--run-dir` draw the curve into `DIR/lr-find.svg`.
    #[arg(long)]
    lr_find: bool,
}

struct MlpJob {
    args: Args,
    data: digits::Splits<digits::DigitItem>,
}

impl Launch for MlpJob {
    type Output = Result<serde_json::Value, TrainerError>;

    fn launch<B: AutodiffBackend>(
        self,
        device: B::Device,
        replica_devices: Vec<B::Device>,
        selection: &Selection,
    ) -> Self::Output {
        let started = Instant::now();
        let args = self.args;
        let hidden = args.hidden.iter().map(|&w| w as usize).collect();
        let mut model = MlpConfig::new(digits::PIXELS, hidden, digits::CLASSES)
            .with_dropout(args.dropout)
            .init::<B>(args.seed, &device);
        if let Some(file) = &args.init_from {
            let (loaded, report) = load_weights(model, file, Layout::Auto, &device)?;
            eprintln!(
                "initialised {} parameters from {} ({} layout)",
                report.loaded,
                file.display(),
                report.layout.name()
            );
            model = loaded;
        }
        let config = TrainerConfig::new(args.lr)
            .with_epochs(Some(args.epochs as usize))
            .with_batch_size(args.batch_size as usize)
            .with_seed(args.seed)
            .with_replicas(args.replicas as usize)
            .with_validation(Some(Frequency::Epochs(1)));
        let nodes = node_config(&args)?;
        let mut builder =
            SupervisedTrainer::builder(model, AdamConfig::new().init(), config, device)
                .train_data(InMemDataset::new(self.data.train), DigitsBatcher)
                .valid_data(InMemDataset::new(self.data.valid), DigitsBatcher)
                .test_data(InMemDataset::new(self.data.test), DigitsBatcher)
                .callback(Progress::new());
        let peer_timeout = args.peer_timeout;
        builder = builder.collective_timeout(peer_timeout);
        if !replica_devices.is_empty() {
            builder = builder.replica_devices(replica_devices);
        }
        if let Some(nodes) = nodes {
            builder = builder.nodes(nodes.with_register_timeout(peer_timeout));
        }
        if let Some(limit) = args.max_time {
            builder = builder.callback(TimeLimit::new(limit));
        }
        if let Some(patience) = args.patience {
            builder = builder.callback(
                EarlyStopping::new(Monitor::min(Split::Valid, "loss"))
                    .patience(patience as usize)
                    .restore_best_weights(true),
            );
        }
        let checkpoints = args.run_dir.as_ref().map(|dir| dir.join("checkpoints"));
        if let Some(dir) = &checkpoints {
            let mut checkpointing = Checkpointing::new(dir);
            if let Some(every) = args.checkpoint_every {
                checkpointing = checkpointing.every_n_steps(every as usize);
            }
            if let Some(keep) = args.keep_last {
                checkpointing = checkpointing.retention(Retention::LastN(keep as usize));
            }
            let handle = checkpointing.handle();
            builder = builder.callback(checkpointing);
            // After Checkpointing, so that it logs the files of the same hook.
            if let Some(run_dir) = &args.run_dir {
                builder = builder.callback(EventLog::new(run_dir).checkpoints(handle));
                builder = builder.callback(TensorBoard::new(run_dir.join("tensorboard")));
            }
        }
        let mut trainer = builder.build()?;
        if args.lr_find {
            let found = trainer.find_lr(&LrFinderConfig::default())?;
            return Ok(serde_json::json!({
                "lr_find": {
                    "suggestion": found.suggestion,
                    "steps": found.lrs.len(),
                    "diverged": found.diverged,
                    "lrs": found.lrs,
                    "smoothed_losses": found.smoothed,
                },
            }));
        }
        if let (true, Some(dir)) = (args.resume, &checkpoints) {
            match latest_in(dir)? {
                Some(file) => {
                    trainer.load_checkpoint(&file)?;
                    let state = trainer.state();
                    eprintln!(
                        "resumed from {} (epoch {}, step {}, batch {} of the epoch)",
                        file.display(),
                        state.epoch,
                        state.global_step,
                        state.batch_in_epoch
                    );
                }
                None => eprintln!("no checkpoint in {}: starting fresh", dir.display()),
            }
        }
        let report = trainer.fit()?;
        let test = trainer.test()?;
        let weights = Sha256::digest(trainer.model().parameter_bytes());
        Ok(serde_json::json!({
            "backend": selection.backend.name(),
            "device": selection.device_name,
            "epochs": report.epochs,
            "stop_reason": report.stop_reason.to_string(),
            "steps": report.steps,
            "test_loss": test.get("loss"),
            "test_accuracy": test.get("accuracy"),
            "seconds": started.elapsed().as_secs_f64(),
            "weights_sha256": format!("{weights:x}"),
            "replicas": args.replicas,
            "replica_devices": selection.replicas.iter().map(|r| &r.name).collect::<Vec<_>>(),
            "nodes": args.nodes,
            "gradient_sync_seconds": trainer.gradient_sync_time().as_secs_f64(),
        }))
    }
}

/// Prints a range test's suggestion (one JSON line) and draws its curve into `DIR/lr-find.svg`.
fn finish_lr_find(
    found: &mut serde_json::Value,
    run_dir: Option<&std::path::Path>,
) -> Result<(), String> {
    let series = |key: &str| -> Vec<f64> {
        found[key]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default()
    };
    let (lrs, losses) = (series("lrs"), series("smoothed_losses"));
    if let Some(dir) = run_dir {
        let points = lrs
            .iter()
            .zip(&losses)
            .map(|(lr, loss)| (lr.log10(), *loss))
            .collect();
        let curve = plot::Series {
            name: "smoothed loss".into(),
            points,
        };
        let svg = plot::line_chart_svg(
            "learning-rate range test",
            "log10(learning rate)",
            "loss",
            &[curve],
        )
        .map_err(|e| e.to_string())?;
        let path = dir.join("lr-find.svg");
        std::fs::write(&path, svg).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(object) = found.as_object_mut() {
        object.remove("lrs");
        object.remove("smoothed_losses");
    }
    println!("{}", serde_json::json!({ "lr_find": found }));
    Ok(())
}

/// The node settings of a multi-machine run (`None` on one machine).
fn node_config(args: &Args) -> Result<Option<NodeConfig>, TrainerError> {
    if args.nodes == 1 {
        return Ok(None);
    }
    let bad = |reason: String| TrainerError::InvalidConfig {
        field: "nodes",
        value: args.nodes.to_string(),
        reason,
    };
    let orchestrator = args
        .orchestrator
        .clone()
        .ok_or_else(|| bad("--nodes above 1 needs --orchestrator ws://HOST:PORT".into()))?;
    let address = match &args.node_address {
        Some(address) => address.clone(),
        None => {
            let port = orchestrator
                .rsplit_once(':')
                .and_then(|(_, p)| p.trim_end_matches('/').parse::<u32>().ok())
                .ok_or_else(|| bad(format!("the orchestrator `{orchestrator}` has no port")))?;
            format!("ws://127.0.0.1:{}", port + 1 + args.node_rank)
        }
    };
    let config = NodeConfig::new(
        args.nodes as usize,
        args.node_rank as usize,
        &orchestrator,
        &address,
    );
    config.validate().map_err(bad)?;
    Ok(Some(config))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    if args.run_dir.is_none() {
        for (given, flag) in [
            (args.checkpoint_every.is_some(), "--checkpoint-every"),
            (args.keep_last.is_some(), "--keep-last"),
            (args.resume, "--resume"),
        ] {
            if given {
                return Err(format!(
                    "{flag} needs --run-dir: checkpoints live in DIR/checkpoints"
                ));
            }
        }
    }
    let request: DeviceRequest =
        DeviceRequest::parse(&args.device, "--device").map_err(|e| e.to_string())?;
    let replica_requests = args
        .replica_devices
        .iter()
        .map(|name| DeviceRequest::parse(name, "--replica-devices"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut args = args;
    if !replica_requests.is_empty() {
        let replicas = replica_requests.len() as u32 + 1;
        if args.replicas != 1 && args.replicas != replicas {
            return Err(format!(
                "--replicas {} but --replica-devices gives {} devices (replicas 1 to {} need \
                 one each; rank 0 takes --device)",
                args.replicas,
                replica_requests.len(),
                replicas - 1
            ));
        }
        args.replicas = replicas;
    }
    let path = args.data.clone().unwrap_or_else(digits::bundled_path);
    let items = digits::load(&path).map_err(|e| e.to_string())?;
    // The split is fixed (seed 0) so that every run is scored on the same test images.
    let data = digits::split(items, 0, 0.15, 0.15);
    let run_dir = args.run_dir.clone();
    if let Some(dir) = &run_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let job = MlpJob { args, data };
    let (selection, result) =
        launch_replicas(request, &replica_requests, job).map_err(|e| e.to_string())?;
    eprintln!("{selection}");
    let mut result = result.map_err(|e| e.to_string())?;
    if let Some(found) = result.get_mut("lr_find") {
        return finish_lr_find(found, run_dir.as_deref());
    }
    if let Some(dir) = run_dir {
        let path = dir.join("result.json");
        std::fs::write(&path, format!("{result:#}\n"))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    println!("{result}");
    Ok(())
}
