//! The parquet feed: each row once per epoch in an order fixed by (seed, epoch), exact
//! continuation from a cursor, and clear errors for bad inputs.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder, StringDictionaryBuilder};
use arrow_array::types::{Float32Type, Int32Type};
use arrow_array::{
    cast::AsArray, types::Int64Type, Array, ArrayRef, BinaryArray, Int64Array, RecordBatch,
    StringArray,
};
use arrow_schema::{DataType, Field, Schema};
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
    // Files whose columns differ in type.
    let other = dir.path().join("other.parquet");
    write_mixed_table(&other, 10);
    let message = open_error(&[good.clone(), other], Some(&["id", "x0"]));
    assert!(
        message.contains("other.parquet")
            && message.contains("\"x0\"")
            && message.contains("good.parquet"),
        "{message}"
    );
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
    // A truncated file.
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let message = open_error(&[cut], None);
    assert!(message.contains("cut.parquet"), "{message}");
}

/// `rows` rows whose every column is a function of `id`: `x0` as text (Utf8, null every 7th
/// row), `blob` (Binary), `pair` (List<Float32>), `kind` (Dictionary<Int32, Utf8>), row groups
/// of 16.
fn write_mixed_table(path: &std::path::Path, rows: i64) {
    let ids: Vec<i64> = (0..rows).collect();
    let text = StringArray::from_iter(
        ids.iter()
            .map(|i| (i % 7 != 3).then(|| format!("caption of {i}"))),
    );
    let blob = BinaryArray::from_iter_values(ids.iter().map(|i| i.to_le_bytes()));
    let mut pair = ListBuilder::new(Float32Builder::new());
    for &i in &ids {
        pair.values().append_value(i as f32);
        pair.values().append_value(i as f32 * 0.5);
        pair.append(true);
    }
    let mut kind = StringDictionaryBuilder::<Int32Type>::new();
    for &i in &ids {
        kind.append_value(["cat", "dog", "bird"][(i % 3) as usize]);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(text),
        Arc::new(blob),
        Arc::new(pair.finish()),
        Arc::new(kind.finish()),
    ];
    let schema = Arc::new(Schema::new(
        ["id", "x0", "blob", "pair", "kind"]
            .iter()
            .zip(&columns)
            .map(|(name, column)| Field::new(*name, column.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(16))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        schema,
        Some(properties),
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn string_binary_list_and_dictionary_columns_arrive_intact_and_projected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.parquet");
    write_mixed_table(&file, 75);
    let columns: Vec<String> = ["kind", "id", "x0", "pair", "blob"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let source = ParquetSource::open(&[file], Some(&columns)).unwrap();
    let types: Vec<DataType> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert!(matches!(types[0], DataType::Dictionary(_, _)), "{types:?}");
    assert_eq!(types[2], DataType::Utf8);
    assert!(matches!(types[3], DataType::List(_)), "{types:?}");
    assert_eq!(types[4], DataType::Binary);
    let mut seen = BTreeSet::new();
    for item in epoch(&source, 3, 0, 0) {
        let batch = &item.batch;
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, columns, "the projection, in the order asked for");
        let kind = batch.column(0).as_dictionary::<Int32Type>();
        let kinds = kind.values().as_string::<i32>();
        let text = batch.column(2).as_string::<i32>();
        let pair = batch.column(3).as_list::<i32>();
        let blob = batch.column(4).as_binary::<i32>();
        for (row, &id) in ids(&item).iter().enumerate() {
            assert!(seen.insert(id));
            let key = kind.keys().value(row) as usize;
            assert_eq!(kinds.value(key), ["cat", "dog", "bird"][(id % 3) as usize]);
            if id % 7 == 3 {
                assert!(text.is_null(row), "row {id}: the null stays null");
            } else {
                assert_eq!(text.value(row), format!("caption of {id}"));
            }
            let values = pair.value(row);
            assert_eq!(
                values.as_primitive::<Float32Type>().values().to_vec(),
                [id as f32, id as f32 * 0.5]
            );
            assert_eq!(blob.value(row), id.to_le_bytes());
        }
    }
    assert_eq!(seen.len(), 75, "every row once");
}
