//! Progress output when it is not a terminal: plain lines, no escape codes.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::dropout_net::net_trainer;
use trainer_core::callback::Progress;
use trainer_core::prelude::*;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn plain_progress_prints_lines_without_escape_codes() {
    let buffer = Buffer::default();
    let config = TrainerConfig::new(0.01)
        .with_epochs(Some(3))
        .with_batch_size(8)
        .with_log_every(1);
    let mut t = net_trainer(
        config,
        0.0,
        vec![Box::new(Progress::plain(buffer.clone()).every(5))],
    );
    t.fit().unwrap();
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\r'),
        "escape codes in: {text:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    // 13 batches per epoch: lines at batches 5 and 10, then the epoch's summary.
    assert_eq!(lines.len(), 3 * 3, "{text}");
    assert!(
        lines[0].starts_with("epoch 1/3 batch 5/13 step 5 loss ")
            && lines[0].contains(" it/s eta "),
        "{}",
        lines[0]
    );
    assert!(
        lines[2].starts_with("epoch 1/3  train_loss ") && lines[2].contains("valid_loss"),
        "{}",
        lines[2]
    );
    assert!(
        lines[8].starts_with("epoch 3/3  train_loss ") && lines[8].ends_with("eta 0:00:00"),
        "{}",
        lines[8]
    );
}
