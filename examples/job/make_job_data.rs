//! Makes `examples/job/digits.parquet` from the bundled digits data: 1797 rows, 64 `Float32`
//! pixel columns `p0`..`p63` (scaled to [0, 1]) and an `Int64` `label`, in row groups of 256 rows (the
//! feed shuffles row groups, then rows within each), snappy-compressed.
//!
//! `cargo run --example make_job_data [-- OUT.parquet]`

#[path = "../support/mod.rs"]
mod support;

use std::fs::File;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use support::digits::{self, PIXELS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/job/digits.parquet".into());
    let items = digits::load(digits::bundled_path())?;
    let mut fields: Vec<Field> = (0..PIXELS)
        .map(|p| Field::new(format!("p{p}"), DataType::Float32, false))
        .collect();
    fields.push(Field::new("label", DataType::Int64, false));
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = (0..PIXELS)
        .map(|p| {
            Arc::new(Float32Array::from_iter_values(
                items.iter().map(|item| item.pixels[p]),
            )) as ArrayRef
        })
        .collect();
    columns.push(Arc::new(Int64Array::from_iter_values(
        items.iter().map(|item| item.label as i64),
    )));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(256))
        .build();
    let mut writer = ArrowWriter::try_new(File::create(&out)?, schema, Some(properties))?;
    writer.write(&batch)?;
    writer.close()?;
    println!("wrote {} rows to {out}", batch.num_rows());
    Ok(())
}
