//! What the store holds and the PromQL engine reads: series with their
//! samples, and Prometheus's staleness marker. A leaf, so that neither
//! `store` nor `promql` has to import the other.

use crate::labels::Labels;

/// One series and its samples in a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// The series labels, `__name__` included.
    pub labels: Labels,
    /// `(ms timestamp, value)` in time order; staleness markers included.
    pub samples: Vec<(i64, f64)>,
}

/// The bit pattern Prometheus uses for staleness markers (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// A staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is a staleness marker (not just any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}
