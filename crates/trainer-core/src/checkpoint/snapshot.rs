use std::marker::PhantomData;
use std::path::Path;
use std::sync::Mutex;

use burn::tensor::backend::Backend;

use super::{write_payload, CheckpointPayload, Header, HostRecord};
use crate::error::Result;

/// Where a checkpoint file is written: a file, or memory.
pub trait CheckpointSink: std::io::Write + std::io::Seek {}

impl<W: std::io::Write + std::io::Seek> CheckpointSink for W {}

/// A checkpoint taken from a trainer, not yet encoded: taking one costs the training thread
/// only references to the model's and optimizer's tensors. burn tensors are immutable values
/// (an operation on a shared tensor writes a new one), so the referenced values stay those of
/// the moment the snapshot was taken while training goes on. The device-to-host copy and the
/// encoding happen in [`encode`](Snapshot::encode), on whatever thread calls it: the
/// checkpoint writer's, for background saving. Shared between receivers through an `Arc`.
pub struct Snapshot {
    epoch: usize,
    step: usize,
    batch_in_epoch: usize,
    payload: Mutex<Box<dyn PayloadSource>>,
}

/// Something that can write the payload (more than once).
trait PayloadSource: Send {
    fn write(&mut self, out: &mut dyn CheckpointSink, origin: &Path) -> Result<Header>;
}

/// A payload whose module and optimizer records are still device tensors; the first encode
/// copies them to the host and keeps the host form.
struct RecordPayload<B: Backend, MR: HostRecord<B>, OR: HostRecord<B>> {
    meta: CheckpointPayload<(), ()>,
    records: Option<(MR, OR, Option<MR>)>,
    host: Option<CheckpointPayload<MR::Host, OR::Host>>,
    backend: PhantomData<B>,
}

impl<B: Backend, MR: HostRecord<B> + 'static, OR: HostRecord<B> + 'static> PayloadSource
    for RecordPayload<B, MR, OR>
{
    fn write(&mut self, out: &mut dyn CheckpointSink, origin: &Path) -> Result<Header> {
        if let Some((module, optimizer, kept)) = self.records.take() {
            // The host copies of the records are independent: the model's (and kept weights')
            // run beside the optimizer's, which holds twice the bytes with Adam.
            let (module, kept, optimizer) = std::thread::scope(|scope| {
                let models = scope.spawn(move || (module.to_host(), kept.map(HostRecord::to_host)));
                let optimizer = optimizer.to_host();
                let (module, kept) = models
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (module, kept, optimizer)
            });
            self.host = Some(self.meta.clone().with_records(module, optimizer, kept));
        }
        let host = self
            .host
            .as_ref()
            .expect("records or their host form are present");
        write_payload(host, out, origin)
    }
}

/// A payload already on the host.
struct HostPayload<M, O, E> {
    payload: CheckpointPayload<M, O, E>,
}

impl<M: serde::Serialize + Send, O: serde::Serialize + Send, E: serde::Serialize + Send>
    PayloadSource for HostPayload<M, O, E>
{
    fn write(&mut self, out: &mut dyn CheckpointSink, origin: &Path) -> Result<Header> {
        write_payload(&self.payload, out, origin)
    }
}

impl Snapshot {
    /// Wraps a payload whose records are already host values (the job runtime's state dicts).
    pub fn from_payload<M, O, E>(payload: CheckpointPayload<M, O, E>) -> Self
    where
        M: serde::Serialize + Send + 'static,
        O: serde::Serialize + Send + 'static,
        E: serde::Serialize + Send + 'static,
    {
        Self {
            epoch: payload.state.epoch,
            step: payload.state.global_step,
            batch_in_epoch: payload.state.batch_in_epoch,
            payload: Mutex::new(Box::new(HostPayload { payload })),
        }
    }

    /// Wraps a payload's metadata and the device records of the module, the optimizer and any
    /// kept weights; they are copied to the host at the first [`encode`](Snapshot::encode).
    pub fn from_records<B, MR, OR>(
        meta: CheckpointPayload<(), ()>,
        module: MR,
        optimizer: OR,
        kept: Option<MR>,
    ) -> Self
    where
        B: Backend,
        MR: HostRecord<B> + 'static,
        OR: HostRecord<B> + 'static,
    {
        Self {
            epoch: meta.state.epoch,
            step: meta.state.global_step,
            batch_in_epoch: meta.state.batch_in_epoch,
            payload: Mutex::new(Box::new(RecordPayload::<B, MR, OR> {
                meta,
                records: Some((module, optimizer, kept)),
                host: None,
                backend: PhantomData,
            })),
        }
    }

    /// Epochs finished when the snapshot was taken.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Optimizer steps done when the snapshot was taken.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Batches consumed in the unfinished epoch.
    pub fn batch_in_epoch(&self) -> usize {
        self.batch_in_epoch
    }

    /// The bytes of the checkpoint file (header and payload).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        self.write_to(&mut bytes, Path::new("<memory>"))?;
        Ok(bytes.into_inner())
    }

    /// Writes the checkpoint file into `out` (from its current position), streaming the payload
    /// (see [`write_payload`]), and returns the header written; `origin` names the file in
    /// errors. The first call copies the device records to the host and keeps that copy for
    /// later calls.
    pub fn write_to(&self, out: &mut dyn CheckpointSink, origin: &Path) -> Result<Header> {
        let mut payload = self
            .payload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        payload.write(out, origin)
    }

    /// Writes the checkpoint file at `path` atomically (see
    /// [`write_atomic_with`](crate::fs::write_atomic_with)) and returns its header.
    pub fn save(&self, path: &Path) -> Result<Header> {
        let mut header = None;
        crate::fs::write_atomic_with(path, |file| {
            header = Some(self.write_to(file, path)?);
            Ok(())
        })?;
        Ok(header.expect("a successful write returns its header"))
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("epoch", &self.epoch)
            .field("step", &self.step)
            .field("batch_in_epoch", &self.batch_in_epoch)
            .finish_non_exhaustive()
    }
}
