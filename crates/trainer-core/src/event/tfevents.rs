//! TensorBoard's event files: the run's events as TensorBoard reads them. Each record is a
//! `tensorflow.Event` protobuf (the few messages needed, derived with `prost`: no `protoc`) in
//! TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of the data).
//!
//! Scalars: every metric of a `metrics` or `validation` event as `<split>/<metric>` at its step,
//! every epoch mean as `epoch/<metric>`; the run's config as a text summary `config` (JSON in a
//! code block). TensorBoard's scalars are `f32`: a value reads back as the `f64` the event log
//! holds, rounded to `f32`.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use super::schema::{Event, EventKind, Reading};
use crate::error::{Result, TrainerError};

/// How a TensorBoard event file's name starts (TensorBoard reads every file whose name contains
/// `tfevents`).
pub const TFEVENTS_PREFIX: &str = "events.out.tfevents.";

/// Writes a run's events into one TensorBoard event file, appending after a resume.
#[derive(Debug)]
pub struct TfEventsWriter {
    path: PathBuf,
    file: File,
    bytes: u64,
}

impl TfEventsWriter {
    /// Starts a new event file in `dir` (created if needed), named
    /// `events.out.tfevents.<seconds>.<pid>.trainer`, with TensorBoard's version record.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io("creating TensorBoard folder", dir))?;
        let seconds = crate::state::unix_ms_now() / 1000;
        let name = format!("{TFEVENTS_PREFIX}{seconds}.{}.trainer", std::process::id());
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io("creating", &path))?;
        let mut writer = Self {
            path,
            file,
            bytes: 0,
        };
        writer.write_record(&TbEvent {
            wall_time: seconds as f64,
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        })?;
        Ok(writer)
    }

    /// Continues the event file `name` in `dir`, keeping its first `bytes` bytes (what it held
    /// when the checkpoint being resumed from was taken: later records would be written twice).
    /// A name that is not a plain event-file name, or a file shorter than `bytes`, is an error.
    pub fn resume(dir: &Path, name: &str, bytes: u64) -> Result<Self> {
        let plain = name.starts_with(TFEVENTS_PREFIX)
            && !name.contains(['/', '\\'])
            && name != "."
            && name != "..";
        if !plain {
            return Err(TrainerError::State {
                key: "tensorboard".into(),
                message: format!("{name:?} is not a TensorBoard event file name"),
            });
        }
        let path = dir.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        let held = file
            .metadata()
            .map_err(io("reading the size of", &path))?
            .len();
        if held < bytes {
            return Err(TrainerError::State {
                key: "tensorboard".into(),
                message: format!(
                    "{} holds {held} bytes, fewer than the {bytes} the checkpoint recorded",
                    path.display()
                ),
            });
        }
        file.set_len(bytes).map_err(io("truncating", &path))?;
        file.seek(SeekFrom::Start(bytes))
            .map_err(io("seeking in", &path))?;
        Ok(Self { path, file, bytes })
    }

    /// Removes the event files this writer made in `dir` (`events.out.tfevents.*.trainer`,
    /// regular files only): a fresh run in a folder replaces the run that was there, as
    /// `events.jsonl` is rewritten.
    pub fn remove_previous(dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with(TFEVENTS_PREFIX) && name.ends_with(".trainer");
            if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The file's name.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Bytes written so far (what a checkpoint records).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes what TensorBoard shows of `event` (scalars, the config); other kinds write nothing.
    pub fn write(&mut self, event: &Event) -> Result<()> {
        let wall_time = event.time_unix_ms as f64 / 1000.0;
        let step = i64::try_from(event.step).unwrap_or(i64::MAX);
        let values = match &event.kind {
            EventKind::Metrics(reading) | EventKind::Validation(reading) => {
                scalars(&reading.split.to_string(), reading)
            }
            EventKind::Epoch(reading) => scalars("epoch", reading),
            EventKind::RunStarted { config, .. } => {
                vec![text("config", &format!("```json\n{config:#}\n```"))]
            }
            _ => return Ok(()),
        };
        if values.is_empty() {
            return Ok(());
        }
        self.write_record(&TbEvent {
            wall_time,
            step,
            what: Some(What::Summary(Summary { value: values })),
        })
    }

    fn write_record(&mut self, event: &TbEvent) -> Result<()> {
        let data = event.encode_to_vec();
        let length = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&length);
        record.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
        record.extend_from_slice(&data);
        record.extend_from_slice(&masked_crc32c(&data).to_le_bytes());
        // One write and a flush per record: a killed run leaves whole records, but for a torn
        // last one, which the resume cuts away.
        self.file
            .write_all(&record)
            .map_err(io("writing", &self.path))?;
        self.file.flush().map_err(io("writing", &self.path))?;
        self.bytes += record.len() as u64;
        Ok(())
    }
}

/// TFRecord's checksum: CRC-32C, rotated right by 15 bits, plus a constant.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TrainerError {
    let path = path.to_path_buf();
    move |source| TrainerError::Io {
        action,
        path,
        source,
    }
}

fn scalars(prefix: &str, reading: &Reading) -> Vec<SummaryValue> {
    reading
        .metrics
        .iter()
        .filter_map(|(name, value)| {
            let value = (*value)?;
            Some(SummaryValue {
                tag: format!("{prefix}/{name}"),
                metadata: None,
                value: Some(Value::SimpleValue(value as f32)),
            })
        })
        .collect()
}

fn text(tag: &str, body: &str) -> SummaryValue {
    let tensor = TensorProto {
        dtype: DT_STRING,
        tensor_shape: Some(TensorShapeProto {
            dim: vec![TensorShapeDim { size: 1 }],
        }),
        string_val: vec![body.as_bytes().to_vec()],
    };
    let metadata = SummaryMetadata {
        plugin_data: Some(PluginData {
            plugin_name: "text".into(),
            content: Vec::new(),
        }),
    };
    SummaryValue {
        tag: tag.into(),
        metadata: Some(metadata),
        value: Some(Value::Tensor(tensor)),
    }
}

/// `tensorflow.DataType.DT_STRING`.
const DT_STRING: i32 = 7;

/// `tensorflow.Event` (tensorflow/core/util/event.proto), the fields written.
#[derive(Clone, PartialEq, Message)]
struct TbEvent {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
    #[prost(oneof = "Value", tags = "2, 8")]
    value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Value {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    content: Vec<u8>,
}

/// `tensorflow.TensorProto`, a string tensor.
#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShapeProto>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    string_val: Vec<Vec<u8>>,
}

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<TensorShapeDim>,
}

/// `tensorflow.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, Message)]
struct TensorShapeDim {
    #[prost(int64, tag = "1")]
    size: i64,
}

#[cfg(test)]
mod tests {
    use super::masked_crc32c;

    #[test]
    fn the_masked_crc_is_tfrecords() {
        // CRC-32C("123456789") = 0xe3069283 (RFC 3720's check value), masked as TFRecord does.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(
            masked_crc32c(b"123456789"),
            0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }
}
