//! Parquet files with damaged footers (the metadata a reader trusts: row counts, offsets,
//! lengths, types) for the job feed: opening and reading them ends in an error or in batches.

use std::path::PathBuf;

use proptest::prelude::*;
use trainer_job::feed::ParquetSource;

#[derive(Debug, Clone)]
enum Damage {
    /// A byte of the footer (the thrift metadata before the last 8 bytes).
    FooterByte(usize, u8),
    /// The footer's length field.
    FooterLength(u32),
    /// A byte anywhere.
    Byte(usize, u8),
    /// The file cut short.
    Truncate(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::FooterByte(at, b)),
        1 => prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()].prop_map(Damage::FooterLength),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Byte(at, b)),
        1 => any::<usize>().prop_map(Damage::Truncate),
    ]
}

fn damaged(original: &[u8], damages: &[Damage]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for damage in damages {
        let len = bytes.len();
        if len < 12 {
            break;
        }
        let footer_len = u32::from_le_bytes(bytes[len - 8..len - 4].try_into().unwrap()) as usize;
        let footer_start = len.saturating_sub(8 + footer_len.min(len - 8));
        match *damage {
            Damage::FooterByte(at, b) => {
                let span = len - 8 - footer_start;
                if span > 0 {
                    bytes[footer_start + at % span] = b;
                }
            }
            Damage::FooterLength(n) => bytes[len - 8..len - 4].copy_from_slice(&n.to_le_bytes()),
            Damage::Byte(at, b) => bytes[at % len] = b,
            Damage::Truncate(at) => bytes.truncate(at % len),
        }
    }
    bytes
}

#[test]
fn parquet_files_with_damaged_footers_fail_cleanly() {
    let original = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/job/digits.parquet"),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("trainer-fuzz-parquet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    crate::panics::install();
    crate::runner()
        .run(&proptest::collection::vec(damage(), 1..4), |damages| {
            let path = dir.join("data.parquet");
            std::fs::write(&path, damaged(&original, &damages)).unwrap();
            crate::guarded("parquet", 512 << 20, move || {
                crate::panics::expect_none(|| {
                    let Ok(source) = ParquetSource::open(&[path], None) else {
                        return;
                    };
                    let mut seen = 0;
                    let _ = source.epoch_batches(1, 0, 32, 0, |_| {
                        seen += 1;
                        seen < 4
                    });
                })
            })
            .map_err(|e| TestCaseError::fail(format!("{e}\ndamages: {damages:?}")))
        })
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
