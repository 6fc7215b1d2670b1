//! The `trainer` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trainer_gpu::{compiled_backends, select, wgpu_adapters, DeviceRequest, DEVICE_ENV};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices { json } => devices(json),
    }
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
            Ok(selection) => println!("auto: {} on {} ({})", selection.backend, selection.device_name, selection.reason),
            Err(e) => println!("auto: error: {e}"),
        }
        println!("override with {DEVICE_ENV}=cpu|wgpu|wgpu:N|auto");
    }
    match auto {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
