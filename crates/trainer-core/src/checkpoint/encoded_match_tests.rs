use super::*;
use rmpv::Value;

fn encoded(value: &Value) -> Vec<u8> {
    rmp_serde::to_vec_named(value).unwrap()
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect(),
    )
}

fn tensor(fill: u8, len: usize) -> Value {
    map(&[
        ("bytes", Value::Binary(vec![fill; len])),
        ("shape", Value::Array(vec![Value::from(len as u64 / 4)])),
        ("dtype", Value::from("F32")),
    ])
}

fn state() -> Value {
    map(&[
        ("aaaaaaaaaaaa1", tensor(1, 400)),
        ("aaaaaaaaaaaa2", tensor(2, 40)),
        ("aaaaaaaaaaaa3", tensor(3, 70_000)),
    ])
}

fn reversed(value: &Value) -> Value {
    match value {
        Value::Map(entries) => Value::Map(entries.iter().rev().cloned().collect()),
        other => other.clone(),
    }
}

#[test]
fn a_record_matches_its_own_bytes_exactly_and_in_any_entry_order() {
    let bytes = encoded(&state());
    assert!(encodes_to(&state(), &bytes));
    assert!(encodes_to_any_entry_order(&state(), &bytes));
}

#[test]
fn entries_in_another_order_match_only_when_the_order_is_free() {
    let file = encoded(&state());
    let record = reversed(&state());
    assert_ne!(encoded(&record), file);
    assert!(!encodes_to(&record, &file));
    assert!(encodes_to_any_entry_order(&record, &file));
}

#[test]
fn any_changed_byte_missing_entry_or_extra_byte_is_a_difference() {
    let file = encoded(&state());
    for at in [0, 1, 20, file.len() / 2, file.len() - 1] {
        let mut changed = file.clone();
        changed[at] ^= 0x01;
        assert!(!encodes_to(&state(), &changed), "byte {at}");
        assert!(!encodes_to_any_entry_order(&state(), &changed), "byte {at}");
    }
    let Value::Map(mut entries) = state() else {
        unreachable!()
    };
    entries.pop();
    let fewer = Value::Map(entries.clone());
    assert!(!encodes_to_any_entry_order(&fewer, &file));
    assert!(!encodes_to_any_entry_order(&state(), &encoded(&fewer)));
    let mut longer = file.clone();
    longer.push(0xc0);
    assert!(!encodes_to(&state(), &longer));
    assert!(!encodes_to_any_entry_order(&state(), &longer));
    assert!(!encodes_to(&state(), &file[..file.len() - 1]));
    assert!(!encodes_to_any_entry_order(
        &state(),
        &file[..file.len() - 1]
    ));
}

#[test]
fn a_file_map_with_a_repeated_key_is_matched_exactly_or_not_at_all() {
    // serde keeps one of two equal keys: the decoded record has fewer entries than the file.
    let twice = Value::Map(vec![
        (Value::from("aaaaaaaaaaaa1"), tensor(1, 8)),
        (Value::from("aaaaaaaaaaaa1"), tensor(2, 8)),
    ]);
    let file = encoded(&twice);
    assert!(map_entries(&file).is_none());
    let kept = Value::Map(vec![(Value::from("aaaaaaaaaaaa1"), tensor(2, 8))]);
    assert!(!encodes_to_any_entry_order(&kept, &file));
    assert!(
        encodes_to_any_entry_order(&twice, &file),
        "exact bytes still match"
    );
}

#[test]
fn value_lengths_of_every_kind_and_truncations() {
    let values = vec![
        Value::Nil,
        Value::from(true),
        Value::from(7u8),
        Value::from(-3i8),
        Value::from(200u8),
        Value::from(-200i16),
        Value::from(70_000u32),
        Value::from(-70_000i32),
        Value::from(u64::MAX),
        Value::from(i64::MIN),
        Value::F32(1.5),
        Value::F64(-2.25),
        Value::from("short"),
        Value::from("x".repeat(40)),
        Value::from("y".repeat(300)),
        Value::from("z".repeat(70_000)),
        Value::Binary(vec![9; 10]),
        Value::Binary(vec![9; 300]),
        Value::Binary(vec![9; 70_000]),
        Value::Ext(3, vec![1]),
        Value::Ext(3, vec![1, 2]),
        Value::Ext(3, vec![1; 4]),
        Value::Ext(3, vec![1; 8]),
        Value::Ext(3, vec![1; 16]),
        Value::Ext(3, vec![1; 5]),
        Value::Ext(3, vec![1; 300]),
        Value::Ext(3, vec![1; 70_000]),
        Value::Array((0..20).map(Value::from).collect()),
        Value::Array((0..70_000).map(|_| Value::Nil).collect()),
        state(),
        Value::Map((0..20).map(|i| (Value::from(i), Value::Nil)).collect()),
        Value::Map((0..70_000).map(|i| (Value::from(i), Value::Nil)).collect()),
    ];
    for value in values {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &value).unwrap();
        assert_eq!(value_end(&bytes, 0), Some(bytes.len()), "{bytes:x?}");
        let mut followed = bytes.clone();
        followed.push(0xc0);
        assert_eq!(value_end(&followed, 0), Some(bytes.len()));
        assert_eq!(value_end(&bytes[..bytes.len() - 1], 0), None);
    }
    assert_eq!(value_end(&[0xc1], 0), None);
    assert_eq!(value_end(&[], 0), None);
    // An array that announces more items than the input holds.
    assert_eq!(value_end(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0], 0), None);
    let deep = [vec![0x91; MAX_DEPTH + 2], vec![0xc0]].concat();
    assert_eq!(value_end(&deep, 0), None);
}
