//! Record batches through Arrow IPC files: how batches cross between the runtime and its child.

use std::path::Path;

use arrow_array::RecordBatch;

/// Writes `batch` as an Arrow IPC file at `path` (replacing it).
pub fn write_batch(path: &Path, batch: &RecordBatch) -> Result<(), String> {
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot write the batch file {}: {e}", path.display()))?;
    let mut writer =
        arrow_ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &batch.schema())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    writer
        .write(batch)
        .and_then(|()| writer.finish())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads the one batch of the Arrow IPC file at `path`.
pub fn read_batch(path: &Path) -> Result<RecordBatch, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read the batch file {}: {e}", path.display()))?;
    let mut reader = arrow_ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    reader
        .next()
        .ok_or_else(|| format!("{} holds no batch", path.display()))?
        .map_err(|e| format!("{}: {e}", path.display()))
}
