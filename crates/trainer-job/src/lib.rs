//! Job runtime.
