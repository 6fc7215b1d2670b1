//! The parquet feed: each row once per epoch in an order fixed by (seed, epoch), exact
//! continuation from a cursor, and clear errors for bad inputs.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{cast::AsArray, types::Int64Type};
use common::write_table;
use trainer_core::data::DataCursor;
use trainer_job::feed::{Feed, FeedItem, ParquetSource};
use trainer_job::JobError;

fn ids(item: &FeedItem) -> Vec<i64> {
    item.batch
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn epoch(source: &ParquetSource, seed: u64, epoch: usize, first: usize) -> Vec<FeedItem> {
    let mut items = Vec::new();
    source
        .epoch_batches(seed, epoch, 16, first, |item| {
            items.push(item);
            true
        })
        .unwrap();
    items
}

/// Two files, 70 + 45 rows, row groups of 20.
fn two_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let (a, b) = (dir.join("a.parquet"), dir.join("b.parquet"));
    write_table(&a, 0, 70, 20);
    write_table(&b, 1000, 45, 20);
    vec![a, b]
}

#[test]
fn an_epoch_visits_every_row_once_in_an_order_fixed_by_seed_and_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let columns = vec!["id".to_string(), "x0".to_string()];
    let source = ParquetSource::open(&two_files(dir.path()), Some(&columns)).unwrap();
    assert_eq!(source.rows(), 115);
    assert_eq!(source.batches_per_epoch(16), 8);
    // The projection, in the order asked for.
    let names: Vec<_> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "x0"]);
    let first = epoch(&source, 9, 0, 0);
    assert_eq!(
        first.iter().map(|i| i.batch.num_rows()).collect::<Vec<_>>(),
        [16, 16, 16, 16, 16, 16, 16, 3]
    );
    assert_eq!(
        first.iter().map(|i| i.last).collect::<Vec<_>>(),
        [false, false, false, false, false, false, false, true]
    );
    let order: Vec<i64> = first.iter().flat_map(ids).collect();
    let all: BTreeSet<i64> = (0..70).chain(1000..1045).collect();
    assert_eq!(order.iter().copied().collect::<BTreeSet<_>>(), all);
    assert_eq!(order.len(), 115);
    let again: Vec<i64> = epoch(&source, 9, 0, 0).iter().flat_map(ids).collect();
    assert_eq!(order, again, "same (seed, epoch), same order");
    let next: Vec<i64> = epoch(&source, 9, 1, 0).iter().flat_map(ids).collect();
    assert_ne!(order, next, "another epoch, another order");
    let other_seed: Vec<i64> = epoch(&source, 10, 0, 0).iter().flat_map(ids).collect();
    assert_ne!(order, other_seed, "another seed, another order");
    // Rows are shuffled within row groups too, not only the groups.
    assert!(
        order.windows(2).filter(|w| w[1] == w[0] + 1).count() < 30,
        "{order:?}"
    );

    // Starting at a cursor gives exactly the rest of the epoch.
    let rest: Vec<Vec<i64>> = epoch(&source, 9, 0, 3).iter().map(ids).collect();
    assert_eq!(rest, first[3..].iter().map(ids).collect::<Vec<_>>());
}

#[test]
fn the_feed_thread_continues_across_epochs_from_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let columns = vec!["id".to_string(), "label".to_string()];
    let source = Arc::new(ParquetSource::open(&two_files(dir.path()), Some(&columns)).unwrap());
    let expected: Vec<Vec<i64>> = epoch(&source, 4, 1, 5)
        .iter()
        .chain(epoch(&source, 4, 2, 0).iter())
        .map(ids)
        .collect();
    let mut feed = Feed::start(source, 4, 16, 2, DataCursor { epoch: 1, batch: 5 });
    let mut got = Vec::new();
    let mut cursor = DataCursor { epoch: 1, batch: 5 };
    for _ in 0..expected.len() {
        let item = feed.next_batch().unwrap();
        assert_eq!((item.epoch, item.index), (cursor.epoch, cursor.batch));
        cursor = item.next_cursor();
        got.push(ids(&item));
    }
    assert_eq!(got, expected);
    assert_eq!(cursor, DataCursor { epoch: 3, batch: 0 });
}

fn open_error(paths: &[PathBuf], columns: Option<&[&str]>) -> String {
    let columns: Option<Vec<String>> = columns.map(|c| c.iter().map(|s| s.to_string()).collect());
    match ParquetSource::open(paths, columns.as_deref()) {
        Err(error @ JobError::Data { .. }) => error.to_string(),
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write_table(&good, 0, 10, 5);
    let missing = dir.path().join("missing.parquet");
    // Without a projection every column is read, and a text column is refused.
    let message = open_error(std::slice::from_ref(&good), None);
    assert!(message.contains("\"name\" has type Utf8"), "{message}");
    let message = open_error(&[missing], None);
    assert!(
        message.contains("missing.parquet") && message.contains("cannot open"),
        "{message}"
    );
    let text = dir.path().join("text.parquet");
    std::fs::write(&text, "id,x0\n1,2\n").unwrap();
    let message = open_error(&[text], None);
    assert!(
        message.contains("text.parquet") && message.contains("not a readable parquet file"),
        "{message}"
    );
    let message = open_error(std::slice::from_ref(&good), Some(&["x0", "y"]));
    assert!(
        message.contains("no column \"y\"") && message.contains("x0, x1, label"),
        "{message}"
    );
    let message = open_error(std::slice::from_ref(&good), Some(&["x0", "name"]));
    assert!(
        message.contains("\"name\"") && message.contains("Utf8"),
        "{message}"
    );
    // A truncated file.
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let message = open_error(&[cut], None);
    assert!(message.contains("cut.parquet"), "{message}");
}
