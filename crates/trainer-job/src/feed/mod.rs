//! The parquet feed: Arrow record batches of the projected columns, shuffled per
//! `(seed, epoch)`, cut to `batch_size` rows, prepared ahead on a background thread
//! (`reader.rs`). This file is the source: the files, their checked footers, row groups and
//! the cache of decoded ones.

mod reader;

pub use reader::{Feed, FeedItem};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use trainer_core::data::{epoch_order, mix_seed};

use crate::error::{JobError, Result};
use crate::hooks::ColumnReader;

/// One parquet file of the source.
#[derive(Debug)]
struct ParquetFile {
    path: PathBuf,
    /// The footer, parsed once: reading a row group then costs only its pages.
    metadata: ArrowReaderMetadata,
    /// Rows of each row group.
    row_groups: Vec<usize>,
    mask: ProjectionMask,
    /// Where each requested column is in the reader's output (which follows the file's order).
    order: Vec<usize>,
}

/// Parquet files read as one table of the projected columns. The unit of shuffling is the row
/// group: an epoch visits the row groups of all files in an order drawn from `(seed, epoch)`
/// and the rows of each in an order drawn from `(seed, epoch, row group)`, so memory stays at a
/// row group per batch in flight, and resuming skips whole row groups without reading them.
#[derive(Debug)]
pub struct ParquetSource {
    files: Vec<ParquetFile>,
    schema: SchemaRef,
    rows: usize,
    /// Decoded row groups kept for later epochs, up to [`DECODED_CACHE_BYTES`].
    cache: std::sync::Mutex<DecodedCache>,
}

/// Bytes of decoded row groups a source keeps in memory, so that data sets that fit are decoded
/// once rather than every epoch (decoding costs far more than shuffling and cutting).
pub const DECODED_CACHE_BYTES: usize = 512 << 20;

#[derive(Debug, Default)]
struct DecodedCache {
    units: std::collections::HashMap<(usize, usize), RecordBatch>,
    bytes: usize,
}

fn open_reader(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file =
        File::open(path).map_err(|e| JobError::data(path, format!("cannot open it: {e}")))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| JobError::data(path, format!("not a readable parquet file: {e}")))
}

/// The most rows one row group may claim: a row group is read whole, so its claim sizes memory.
pub const MAX_ROW_GROUP_ROWS: usize = 1 << 27;

/// The row counts of a file's row groups, after checking what the footer claims against the
/// file (the parquet reader trusts it, and panics on negative offsets or sizes): non-negative
/// counts of at most [`MAX_ROW_GROUP_ROWS`], and every column chunk inside the file.
fn checked_row_groups(
    path: &Path,
    metadata: &parquet::file::metadata::ParquetMetaData,
) -> Result<Vec<usize>> {
    let file_len = std::fs::metadata(path)
        .map_err(|e| JobError::data(path, format!("cannot read its size: {e}")))?
        .len();
    let mut rows = Vec::new();
    for (index, group) in metadata.row_groups().iter().enumerate() {
        let claimed = group.num_rows();
        let count = usize::try_from(claimed).ok().filter(|&n| n <= MAX_ROW_GROUP_ROWS).ok_or_else(|| {
            JobError::data(path, format!("row group {index} claims {claimed} rows; a row group holds 0 to {MAX_ROW_GROUP_ROWS}"))
        })?;
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let length = column.compressed_size();
            let inside = start >= 0
                && length >= 0
                && (start as u64)
                    .checked_add(length as u64)
                    .is_some_and(|end| end <= file_len);
            if !inside {
                return Err(JobError::data(
                    path,
                    format!(
                        "row group {index}, column {:?}: its footer places it at bytes {start}..+{length}, outside the {file_len}-byte file",
                        column.column_path().string()
                    ),
                ));
            }
        }
        rows.push(count);
    }
    Ok(rows)
}

impl ParquetSource {
    /// Opens `paths` and checks them: each is a parquet file with every one of `columns` (all
    /// of the first file's when `None`), of any Arrow type (numbers, strings, binary, lists,
    /// dictionaries, structs), the same in every file.
    pub fn open(paths: &[PathBuf], columns: Option<&[String]>) -> Result<Self> {
        let mut files = Vec::new();
        let mut schema: Option<SchemaRef> = None;
        let mut rows = 0;
        for path in paths {
            let builder = open_reader(path)?;
            let file_schema = builder.schema().clone();
            let names: Vec<String> = match (columns, &schema) {
                (Some(columns), _) => columns.to_vec(),
                (None, Some(schema)) => schema.fields().iter().map(|f| f.name().clone()).collect(),
                (None, None) => file_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect(),
            };
            let mut indices = Vec::new();
            for name in &names {
                let index = file_schema.index_of(name).map_err(|_| {
                    let present: Vec<&str> = file_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect();
                    JobError::data(
                        path,
                        format!(
                            "has no column {name:?}; its columns are {}",
                            present.join(", ")
                        ),
                    )
                })?;
                // Any Arrow type: the feed only shuffles and cuts rows; what a column means is the
                // trainer's business (`prepare_batch`).
                let data_type = file_schema.field(index).data_type();
                if let Some(first) = &schema {
                    let expected = first
                        .field_with_name(name)
                        .map(|f| f.data_type().clone())
                        .ok();
                    if expected.as_ref() != Some(data_type) {
                        return Err(JobError::data(
                            path,
                            format!(
                                "column {name:?} has type {data_type}; in {} it is {}",
                                paths[0].display(),
                                expected.map_or("absent".into(), |t| t.to_string())
                            ),
                        ));
                    }
                }
                indices.push(index);
            }
            let mut sorted = indices.clone();
            sorted.sort_unstable();
            let order = indices
                .iter()
                .map(|i| sorted.binary_search(i).expect("index present"))
                .collect();
            let mask = ProjectionMask::roots(builder.parquet_schema(), indices.iter().copied());
            let row_groups = checked_row_groups(path, builder.metadata())?;
            rows += row_groups.iter().sum::<usize>();
            if schema.is_none() {
                let fields: Vec<_> = indices
                    .iter()
                    .map(|&i| file_schema.field(i).clone())
                    .collect();
                schema = Some(Arc::new(Schema::new(fields)));
            }
            let metadata = builder.metadata().clone();
            let metadata = ArrowReaderMetadata::try_new(metadata, Default::default())
                .map_err(|e| JobError::data(path, format!("not a readable parquet file: {e}")))?;
            files.push(ParquetFile {
                path: path.clone(),
                metadata,
                row_groups,
                mask,
                order,
            });
        }
        let schema = schema.ok_or_else(|| JobError::data("(dataset)", "no parquet files given"))?;
        if rows == 0 {
            return Err(JobError::data(&paths[0], "the data has no rows"));
        }
        Ok(Self {
            files,
            schema,
            rows,
            cache: Default::default(),
        })
    }

    /// The projected columns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows in all files.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Batches in an epoch of `batch_size` rows (the last may be shorter).
    pub fn batches_per_epoch(&self, batch_size: usize) -> usize {
        self.rows.div_ceil(batch_size)
    }

    /// Every (file, row group, rows), in file order.
    fn units(&self) -> Vec<(usize, usize, usize)> {
        self.files
            .iter()
            .enumerate()
            .flat_map(|(f, file)| {
                file.row_groups
                    .iter()
                    .enumerate()
                    .map(move |(g, &rows)| (f, g, rows))
            })
            .collect()
    }

    /// One row group's projected columns, in the requested column order: from the cache, or
    /// decoded (and cached while the cache has room).
    fn read_unit(&self, file: usize, group: usize) -> Result<RecordBatch> {
        let lock = || {
            self.cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(batch) = lock().units.get(&(file, group)) {
            return Ok(batch.clone());
        }
        let batch = self.decode_unit(file, group)?;
        let size = batch.get_array_memory_size();
        let mut cache = lock();
        if cache.bytes + size <= DECODED_CACHE_BYTES {
            cache.bytes += size;
            cache.units.insert((file, group), batch.clone());
        }
        Ok(batch)
    }

    fn decode_unit(&self, file: usize, group: usize) -> Result<RecordBatch> {
        let info = &self.files[file];
        let rows = info.row_groups[group].max(1);
        let file = File::open(&info.path)
            .map_err(|e| JobError::data(&info.path, format!("cannot open it: {e}")))?;
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, info.metadata.clone())
                .with_projection(info.mask.clone())
                .with_row_groups(vec![group])
                .with_batch_size(rows)
                .build()
                .map_err(|e| JobError::data(&info.path, format!("row group {group}: {e}")))?;
        let batches: Vec<RecordBatch> = reader
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| JobError::data(&info.path, format!("row group {group}: {e}")))?;
        let read_schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        let batch = arrow_select::concat::concat_batches(&read_schema, &batches)
            .map_err(|e| JobError::data(&info.path, format!("row group {group}: {e}")))?;
        let batch = batch
            .project(&info.order)
            .map_err(|e| JobError::data(&info.path, e.to_string()))?;
        RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
            .map_err(|e| JobError::data(&info.path, e.to_string()))
    }

    /// Calls `emit` with every batch of `epoch` from batch `first` on, in the epoch's order;
    /// stops early when `emit` returns false.
    pub fn epoch_batches(
        &self,
        seed: u64,
        epoch: usize,
        batch_size: usize,
        first: usize,
        mut emit: impl FnMut(FeedItem) -> bool,
    ) -> Result<()> {
        let units = self.units();
        let per_epoch = self.batches_per_epoch(batch_size);
        let epoch_seed = mix_seed(seed, epoch as u64);
        let mut skip = first * batch_size;
        let mut index = first;
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut pending_rows = 0;
        for unit in epoch_order(units.len(), Some(seed), epoch) {
            let (file, group, rows) = units[unit];
            if skip >= rows {
                skip -= rows;
                continue;
            }
            let batch = self.read_unit(file, group)?;
            let order = epoch_order(rows, Some(epoch_seed), unit);
            let indices = UInt32Array::from_iter_values(order.iter().skip(skip).map(|&i| i as u32));
            skip = 0;
            let shuffled = arrow_select::take::take_record_batch(&batch, &indices)
                .map_err(|e| JobError::data(&self.files[file].path, e.to_string()))?;
            // Batches are zero-copy slices of the shuffled row group; only a batch that spans
            // two row groups is copied together.
            let mut offset = 0;
            let available = shuffled.num_rows();
            while offset < available {
                let take = (batch_size - pending_rows).min(available - offset);
                pending.push(shuffled.slice(offset, take));
                pending_rows += take;
                offset += take;
                if pending_rows == batch_size {
                    let out = if pending.len() == 1 {
                        pending.pop().expect("one piece")
                    } else {
                        arrow_select::concat::concat_batches(&self.schema, &pending)
                            .map_err(|e| JobError::data("(feed)", e.to_string()))?
                    };
                    pending.clear();
                    pending_rows = 0;
                    let last = index + 1 == per_epoch;
                    if !emit(FeedItem {
                        batch: out,
                        epoch,
                        index,
                        last,
                    }) {
                        return Ok(());
                    }
                    index += 1;
                }
            }
        }
        if pending_rows > 0 {
            let all = arrow_select::concat::concat_batches(&self.schema, &pending)
                .map_err(|e| JobError::data("(feed)", e.to_string()))?;
            emit(FeedItem {
                batch: all,
                epoch,
                index,
                last: true,
            });
        }
        Ok(())
    }
}

impl ColumnReader for ParquetSource {
    fn read_column(&self, column: &str) -> Result<Vec<ArrayRef>> {
        let position = self.schema.index_of(column).map_err(|_| {
            JobError::data(
                &self.files[0].path,
                format!("column {column:?} is not among the projected columns"),
            )
        })?;
        let mut arrays = Vec::new();
        for (f, file) in self.files.iter().enumerate() {
            for group in 0..file.row_groups.len() {
                arrays.push(self.read_unit(f, group)?.column(position).clone());
            }
        }
        Ok(arrays)
    }
}
