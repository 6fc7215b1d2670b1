//! The bundled digits data set (UCI optical digits, 8×8 images, 1797 rows) and its batcher.
//!
//! `data/digits.csv.gz` holds 64 pixel values (0..16) and a label (0..9) per line. The loader
//! also reads plain `.csv`.

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Pixels per image.
pub const PIXELS: usize = 64;
/// Number of classes.
pub const CLASSES: usize = 10;

/// One image: 64 pixels scaled to `[0, 1]`, and its digit.
#[derive(Debug, Clone, PartialEq)]
pub struct DigitItem {
    /// Pixel intensities, row-major, divided by 16.
    pub pixels: [f32; PIXELS],
    /// The digit, 0..9.
    pub label: u8,
}

/// Why the digits file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DigitsError {
    /// The file could not be opened or decompressed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not 64 pixels in 0..16 and a label in 0..9.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The file has no rows.
    #[error("{path}: no rows")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The path of the bundled data file, inside this package.
pub fn bundled_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv.gz")
}

/// Reads a digits file (`.csv` or `.csv.gz`).
pub fn load(path: impl AsRef<Path>) -> Result<Vec<DigitItem>, DigitsError> {
    let path = path.as_ref();
    let io = |source| DigitsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    let text = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_string(&mut text)
            .map_err(io)?;
        text
    } else {
        String::from_utf8(raw)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?
    };
    let mut items = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parse_error = |message: String| DigitsError::Parse {
            path: path.to_path_buf(),
            line: index + 1,
            message,
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != PIXELS + 1 {
            return Err(parse_error(format!(
                "expected {} comma-separated values, found {}",
                PIXELS + 1,
                fields.len()
            )));
        }
        let mut pixels = [0f32; PIXELS];
        for (column, (pixel, field)) in pixels.iter_mut().zip(&fields).enumerate() {
            let value: f32 = field.parse().map_err(|_| {
                parse_error(format!("column {}: `{field}` is not a number", column + 1))
            })?;
            if !(0.0..=16.0).contains(&value) {
                return Err(parse_error(format!(
                    "column {}: pixel {value} outside 0..16",
                    column + 1
                )));
            }
            *pixel = value / 16.0;
        }
        let label: u8 = fields[PIXELS]
            .parse()
            .ok()
            .filter(|l| (*l as usize) < CLASSES)
            .ok_or_else(|| {
                parse_error(format!("label `{}` is not a digit 0..9", fields[PIXELS]))
            })?;
        items.push(DigitItem { pixels, label });
    }
    if items.is_empty() {
        return Err(DigitsError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(items)
}

/// Train, validation and test parts of a data set.
#[derive(Debug, Clone)]
pub struct Splits<T> {
    /// Training items.
    pub train: Vec<T>,
    /// Validation items.
    pub valid: Vec<T>,
    /// Test items.
    pub test: Vec<T>,
}

/// Shuffles `items` with `seed` and cuts them into train / valid / test by the two fractions
/// (the test part gets the rest). The same seed always gives the same split.
pub fn split<T>(
    mut items: Vec<T>,
    seed: u64,
    valid_fraction: f64,
    test_fraction: f64,
) -> Splits<T> {
    items.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n = items.len();
    let n_valid = (n as f64 * valid_fraction).round() as usize;
    let n_test = (n as f64 * test_fraction).round() as usize;
    let test = items.split_off(n - n_test.min(n));
    let valid = items.split_off(items.len() - n_valid.min(items.len()));
    Splits {
        train: items,
        valid,
        test,
    }
}

/// A batch of images and labels.
#[derive(Debug, Clone)]
pub struct DigitsBatch<B: Backend> {
    /// `[batch, 64]` pixels.
    pub images: Tensor<B, 2>,
    /// `[batch]` labels.
    pub targets: Tensor<B, 1, Int>,
}

/// Stacks [`DigitItem`]s into a [`DigitsBatch`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DigitsBatcher;

impl<B: Backend> Batcher<B, DigitItem, DigitsBatch<B>> for DigitsBatcher {
    fn batch(&self, items: Vec<DigitItem>, device: &B::Device) -> DigitsBatch<B> {
        let n = items.len();
        let pixels: Vec<f32> = items.iter().flat_map(|i| i.pixels).collect();
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        DigitsBatch {
            images: Tensor::from_data(TensorData::new(pixels, [n, PIXELS]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}
