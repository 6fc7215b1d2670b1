//! Value parsers for the examples' command-line flags (clap `value_parser`s).

use std::time::Duration;

/// A learning rate: a finite number above 0.
pub fn positive_finite(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        Ok(value) => Err(format!("{value} is not a finite number above 0")),
        Err(e) => Err(e.to_string()),
    }
}

/// A duration in seconds: above 0, and one a `Duration` holds.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let value = positive_finite(text)?;
    Duration::try_from_secs_f64(value).map_err(|e| format!("{value} seconds: {e}"))
}

/// A dropout probability: in [0, 1).
pub fn probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..1.0).contains(&value) => Ok(value),
        Ok(value) => Err(format!("{value} is not a probability in [0, 1)")),
        Err(e) => Err(e.to_string()),
    }
}
