//! The `trainer` command line.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
mod curves;
mod export;
mod plot;
mod schedule_preview;

use curves::{read_events, run_panels, XAxis};
use plot::{line_chart_svg, panels_svg, Series};
use schedule_preview::preview;
use trainer_core::checkpoint::{latest_in, CheckpointSummary};
use trainer_gpu::{compiled_backends, select, wgpu_adapters, DeviceRequest, DEVICE_ENV};

trainer::program_allocator!();

/// Tools around trainer runs.
#[derive(Debug, Parser)]
#[command(name = "trainer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the compiled backends, the wgpu adapters found, and what `auto` picks.
    Devices {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a learning-rate schedule's curve as one JSON array: the lr before any step, then
    /// after each step.
    Schedule {
        /// The schedule, PyTorch-style JSON (`{"scheduler": "StepLR", "params": {...}}`), or
        /// `@FILE` to read it from a file.
        #[arg(long)]
        config: String,
        /// The base learning rate.
        #[arg(long)]
        base_lr: f64,
        /// Number of steps.
        #[arg(long)]
        steps: usize,
        /// Comma-separated metric values, one per step, for plateau schedules.
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<f64>,
        /// Also draw the curve into this SVG file.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Draw a run's training and validation curves, and its learning rate, into an SVG file.
    Plot {
        /// The run folder (its `events.jsonl`) or an `events.jsonl` file.
        path: PathBuf,
        /// The SVG file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Comma-separated metric names (default: every metric in the log).
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<String>,
        /// What the x axis counts.
        #[arg(long, value_enum, default_value = "step")]
        x: XAxis,
    },
    /// Start the orchestrator of a data-parallel run over several machines (burn-collective's,
    /// over WebSocket): nodes join with `--nodes N --node-rank R --orchestrator ws://HOST:PORT`.
    /// It runs until SIGINT or SIGTERM.
    Orchestrator {
        /// The port to listen on (all interfaces).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
    },
    /// Run a training job from a JSON job spec (see docs/job.md); exit status 0 completed,
    /// 1 failed, 130 cancelled, 2 not started.
    Run(trainer::job::cli::RunArgs),
    /// Check a checkpoint file (magic, version, length, checksum) and print what it holds;
    /// exit status 1 with the reason when it is damaged.
    Inspect {
        /// The checkpoint file, or a checkpoint folder (its `latest` checkpoint).
        path: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a checkpoint's module as a safetensors file: tensors named by their record paths
    /// (`layers.0.weight`), the run's metadata in the header; exit status 1 with the reason
    /// when the checkpoint is damaged.
    Export {
        /// The checkpoint file, or a checkpoint folder (its `latest` checkpoint).
        path: PathBuf,
        /// The file format.
        #[arg(long, value_enum, default_value = "safetensors")]
        format: export::Format,
        /// The file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// PyTorch's layout: `Linear` weights transposed to `[out, in]`; says which tensors it
        /// did not map.
        #[arg(long)]
        torch_names: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices { json } => devices(json),
        Command::Orchestrator { port } => orchestrator(port),
        Command::Run(args) => trainer::job::cli::run::<trainer::job::Builtins>(&args),
        Command::Plot {
            path,
            output,
            metrics,
            x,
        } => match plot(&path, &output, &metrics, x) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Export {
            path,
            format,
            output,
            torch_names,
        } => match export::export(&path, &output, format, torch_names) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Inspect { path, json } => match inspect(&path, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Schedule {
            config,
            base_lr,
            steps,
            metrics,
            svg,
        } => match schedule(&config, base_lr, steps, &metrics, svg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

fn orchestrator(port: u16) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the orchestrator's runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("orchestrator listening on ws://0.0.0.0:{port}");
    runtime.block_on(burn_collective::start_global_orchestrator(port));
    ExitCode::SUCCESS
}

fn schedule(
    config: &str,
    base_lr: f64,
    steps: usize,
    metrics: &[f64],
    svg: Option<PathBuf>,
) -> Result<(), String> {
    let config = match config.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("reading --config {path}: {e}"))?
        }
        None => config.to_string(),
    };
    let curve = preview(&config, base_lr, steps, metrics).map_err(|e| e.to_string())?;
    let lrs = curve.lrs;
    if let Some(path) = svg {
        let title = format!("{} (base lr {base_lr})", curve.scheduler);
        let drawing = line_chart_svg(
            &title,
            "step",
            "learning rate",
            &[Series::indexed("lr", &lrs)],
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(&path, drawing).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    println!(
        "{}",
        serde_json::to_string(&lrs).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn plot(
    path: &std::path::Path,
    output: &std::path::Path,
    metrics: &[String],
    x: XAxis,
) -> Result<(), String> {
    let (file, events) = read_events(path).map_err(|e| e.to_string())?;
    let panels = run_panels(&file, &events, metrics, x).map_err(|e| e.to_string())?;
    let x_label = match x {
        XAxis::Step => "step",
        XAxis::Epoch => "epoch",
    };
    let svg = panels_svg(x_label, &panels).map_err(|e| e.to_string())?;
    std::fs::write(output, svg).map_err(|e| format!("writing {}: {e}", output.display()))?;
    eprintln!(
        "wrote {} ({} panels from {})",
        output.display(),
        panels.len(),
        file.display()
    );
    Ok(())
}

fn inspect(path: &std::path::Path, json: bool) -> Result<(), String> {
    let file = if path.is_dir() {
        latest_in(path)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} holds no `latest` checkpoint pointer", path.display()))?
    } else {
        path.to_path_buf()
    };
    let summary = CheckpointSummary::read(&file).map_err(|e| e.to_string())?;
    if json {
        let mut value = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
        value["file"] = serde_json::json!(file.display().to_string());
        value["checksum_verified"] = serde_json::json!(true);
        println!("{value}");
        return Ok(());
    }
    let created = describe_time(summary.created_unix_ms);
    println!("file            {}", file.display());
    println!(
        "format          {} ({} payload bytes, CRC-32 {:08x} verified)",
        summary.format_version, summary.payload_bytes, summary.checksum
    );
    println!(
        "written by      trainer {} on burn {}, {}",
        summary.trainer_version, summary.burn_version, created
    );
    println!(
        "position        epoch {} done, step {}, batch {} of the next epoch, {} samples seen",
        summary.epoch, summary.global_step, summary.batch_in_epoch, summary.samples_seen
    );
    println!("seed            {}", summary.seed);
    for (split, values) in &summary.metrics {
        let values: Vec<String> = values
            .iter()
            .map(|(name, value)| format!("{name} {value:.6}"))
            .collect();
        println!("metrics {split:<7} {}", values.join(", "));
    }
    println!(
        "module          {} tensors, {} bytes",
        summary.module_tensors, summary.module_tensor_bytes
    );
    println!(
        "optimizer       {} tensors, {} bytes",
        summary.optimizer_tensors, summary.optimizer_tensor_bytes
    );
    if !summary.callbacks.is_empty() {
        println!("callback states {}", summary.callbacks.join(", "));
    }
    Ok(())
}

/// A time in milliseconds since the Unix epoch as RFC 3339 text, or the raw number when it is
/// past what RFC 3339 can write (the year 9999): a file may hold any number.
fn describe_time(unix_ms: u64) -> String {
    // 9999-12-31T23:59:59Z.
    const LAST_RFC3339_SECOND: u64 = 253_402_300_799;
    if unix_ms / 1000 > LAST_RFC3339_SECOND {
        return format!("{unix_ms} ms after 1970 (past the year 9999)");
    }
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn devices(json: bool) -> ExitCode {
    let backends: Vec<&str> = compiled_backends().iter().map(|b| b.name()).collect();
    let adapters = wgpu_adapters();
    let auto = select(DeviceRequest::Auto);
    if json {
        let value = serde_json::json!({
            "backends": backends,
            "wgpu_adapters": adapters.iter().map(|a| serde_json::json!({
                "name": a.name, "type": a.device_type, "api": a.api, "driver": a.driver,
            })).collect::<Vec<_>>(),
            "auto": match &auto {
                Ok(s) => serde_json::json!({"backend": s.backend.name(), "device": s.device_name, "reason": s.reason}),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            },
        });
        println!("{value}");
    } else {
        println!("compiled backends: {}", backends.join(", "));
        if !compiled_backends().contains(&trainer_gpu::BackendKind::Wgpu) {
            println!("wgpu adapters: (wgpu feature not compiled in)");
        } else if adapters.is_empty() {
            println!("wgpu adapters: none found");
        } else {
            println!("wgpu adapters:");
            for (index, adapter) in adapters.iter().enumerate() {
                println!("  {index}: {adapter}");
            }
        }
        match &auto {
            Ok(selection) => println!(
                "auto: {} on {} ({})",
                selection.backend, selection.device_name, selection.reason
            ),
            Err(e) => println!("auto: error: {e}"),
        }
        println!("override with {DEVICE_ENV}=cpu|flex|ndarray|wgpu|wgpu:N|auto");
    }
    match auto {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
