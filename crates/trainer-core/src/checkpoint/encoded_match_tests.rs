use super::*;
use rmpv::Value;

use crate::checkpoint::scanned::LentBin;

fn encodes_to<T: Serialize>(record: &T, expected: &[u8]) -> bool {
    super::encodes_to(record, expected, &LentBins::default())
}

fn encodes_to_any_entry_order<T: Serialize>(record: &T, expected: &[u8]) -> bool {
    super::encodes_to_any_entry_order(record, expected, &LentBins::default())
}

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

/// A left-out byte string: its content's offset in the skeleton, its header, and its buffer's
/// address and length.
type LeftOut = (usize, Vec<u8>, usize, usize);

/// `value` encoded with its large byte strings left out (an empty one in the place of each, as a
/// load's skeleton), and the lent table that stands for them: their buffers are `value`'s own.
fn skeleton_of(value: &Value) -> (Vec<u8>, Vec<LeftOut>) {
    fn buffers<'v>(value: &'v Value, out: &mut Vec<&'v [u8]>) {
        match value {
            Value::Binary(bytes) if bytes.len() >= 256 => out.push(bytes),
            Value::Array(items) => items.iter().for_each(|v| buffers(v, out)),
            Value::Map(entries) => entries.iter().for_each(|(k, v)| {
                buffers(k, out);
                buffers(v, out)
            }),
            _ => {}
        }
    }
    let mut found = Vec::new();
    buffers(value, &mut found);
    let file = encoded(value);
    let (mut skeleton, mut lent, mut from) = (Vec::new(), Vec::new(), 0);
    for buffer in found {
        let len = buffer.len();
        let header = [&[0xc5][..], &(len as u16).to_be_bytes()].concat();
        let at = from + file[from..].windows(3).position(|w| w == header).unwrap();
        skeleton.extend_from_slice(&file[from..at]);
        skeleton.extend_from_slice(&[0xc4, 0x00]);
        lent.push((skeleton.len(), header, buffer.as_ptr() as usize, len));
        from = at + 3 + len;
    }
    skeleton.extend_from_slice(&file[from..]);
    (skeleton, lent)
}

fn lent_table(skeleton: &[u8], lent: &[LeftOut]) -> LentBins {
    LentBins(
        lent.iter()
            .map(|(at, header, address, len)| {
                let key = skeleton[*at..].as_ptr() as usize;
                let bin = LentBin {
                    header: header.clone(),
                    address: *address,
                    len: *len,
                };
                (key, bin)
            })
            .collect(),
    )
}

#[test]
fn a_record_matches_a_skeleton_through_the_very_buffers_it_was_read_into() {
    let state = map(&[
        ("aaaaaaaaaaaa1", tensor(1, 400)),
        ("aaaaaaaaaaaa2", tensor(2, 8)),
        ("aaaaaaaaaaaa3", tensor(3, 1000)),
    ]);
    let (skeleton, lent) = skeleton_of(&state);
    assert_eq!(lent.len(), 2, "two large byte strings left out");
    let table = lent_table(&skeleton, &lent);
    assert!(super::encodes_to(&state, &skeleton, &table));
    assert!(super::encodes_to_any_entry_order(&state, &skeleton, &table));
    // Without the table the skeleton's empty strings are just that.
    assert!(!encodes_to(&state, &skeleton));

    // Equal bytes in other memory are not the buffers the load read: no match.
    let copy = state.clone();
    assert!(!super::encodes_to(&copy, &skeleton, &table));
    assert!(!super::encodes_to_any_entry_order(&copy, &skeleton, &table));

    // A header other than the file's, or a buffer of another length, does not match.
    for change in [
        |bin: &mut LeftOut| bin.1[2] ^= 1,
        |bin: &mut LeftOut| bin.3 -= 1,
    ] {
        let mut changed = lent.clone();
        change(&mut changed[1]);
        let table = lent_table(&skeleton, &changed);
        assert!(!super::encodes_to(&state, &skeleton, &table));
    }
}
