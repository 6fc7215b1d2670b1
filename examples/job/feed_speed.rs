//! How fast the parquet feed cuts batches on its own, against how fast the example job's steps
//! consume them: `cargo run --release --example feed_speed [-- SPEC]`.
//!
//! Prints, for the example job's data and batch size: microseconds per batch for the feed
//! alone (reading, shuffling, cutting; one thread) over 20 epochs.

use std::path::PathBuf;
use std::time::Instant;

use trainer::job::feed::ParquetSource;
use trainer::job::JobSpec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec_path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "examples/job/spec.json".into());
    let spec = JobSpec::from_file(&spec_path)?;
    let source = ParquetSource::open(&spec.dataset.parquet_paths, spec.dataset.columns.as_deref())?;
    let epochs = 20;
    let mut batches = 0usize;
    let started = Instant::now();
    for epoch in 0..epochs {
        source.epoch_batches(spec.seed, epoch, spec.dataset.batch_size, 0, |item| {
            batches += 1;
            std::hint::black_box(item.batch.num_rows());
            true
        })?;
    }
    let per_batch = started.elapsed().as_secs_f64() / batches as f64;
    println!(
        "{{\"batches\":{batches},\"feed_us_per_batch\":{:.1}}}",
        per_batch * 1e6
    );
    Ok(())
}
