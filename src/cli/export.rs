//! `trainer export`: a checkpoint's module as a safetensors file.

use std::path::Path;

use trainer_core::checkpoint::{latest_in, read_checkpoint_bytes};
use trainer_core::weights::{export_safetensors, Layout};

/// The weight formats `trainer export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A safetensors file.
    Safetensors,
}

/// Writes the module of the checkpoint `path` (a file, or a folder's `latest`) to `output`, in
/// PyTorch's layout with `torch_names`; reports what it wrote on stderr.
pub fn export(path: &Path, output: &Path, format: Format, torch_names: bool) -> Result<(), String> {
    let Format::Safetensors = format;
    let file = if path.is_dir() {
        latest_in(path)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} holds no `latest` checkpoint pointer", path.display()))?
    } else {
        path.to_path_buf()
    };
    let bytes = read_checkpoint_bytes(&file).map_err(|e| e.to_string())?;
    let layout = if torch_names {
        Layout::Torch
    } else {
        Layout::Burn
    };
    let (safetensors, report) = export_safetensors(&bytes, &file.display().to_string(), layout)
        .map_err(|e| e.to_string())?;
    std::fs::write(output, safetensors)
        .map_err(|e| format!("writing {}: {e}", output.display()))?;
    eprintln!(
        "wrote {} ({} tensors, {} bytes of data, {} layout) from {}",
        output.display(),
        report.tensors,
        report.bytes,
        report.layout.name(),
        file.display()
    );
    if torch_names {
        eprintln!(
            "mapped to PyTorch's layout (Linear weights transposed to [out, in]): {}",
            list(&report.transposed)
        );
        if !report.unmapped.is_empty() {
            eprintln!(
                "not mapped (written as burn holds them; their PyTorch layout may differ): {}",
                list(&report.unmapped)
            );
        }
    }
    Ok(())
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
