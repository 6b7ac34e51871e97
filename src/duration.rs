//! Prometheus duration strings (`15s`, `5m`, `1h30m`, `1d`, `1w`, `1y`,
//! `500ms`), parsed and printed exactly like `model.ParseDuration` and
//! `model.Duration.String` in prometheus/common (`model/time.go`).

use std::time::Duration;

use thiserror::Error;

/// A malformed duration string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration string")]
    Empty,
    /// Not of the form `<int><unit>...`.
    #[error("not a valid duration string: {0:?} (expected e.g. 15s, 5m, 1h30m)")]
    Invalid(String),
    /// A unit that is not one of y, w, d, h, m, s, ms.
    #[error("unknown unit {unit:?} in duration {input:?} (units: y w d h m s ms)")]
    UnknownUnit {
        /// the whole input
        input: String,
        /// the bad unit
        unit: String,
    },
    /// Units out of order or repeated, e.g. `1m1h`.
    #[error(
        "not a valid duration string: {0:?} (units must go from largest to smallest, each once)"
    )]
    Order(String),
    /// Too large for 64-bit milliseconds.
    #[error("duration out of range: {0:?}")]
    Range(String),
}

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration. `"0"` is allowed; fractions, signs and
/// spaces are not.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let b = s.as_bytes();
    let mut pos = 0;
    let mut total: u64 = 0;
    let mut last_unit: Option<usize> = None;
    while pos < b.len() {
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if start == pos {
            return Err(DurationError::Invalid(s.to_string()));
        }
        let n: u64 = s[start..pos]
            .parse()
            .map_err(|_| DurationError::Range(s.to_string()))?;
        let ustart = pos;
        while pos < b.len() && !b[pos].is_ascii_digit() {
            pos += 1;
        }
        let unit = &s[ustart..pos];
        let Some(idx) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(DurationError::UnknownUnit {
                input: s.to_string(),
                unit: unit.to_string(),
            });
        };
        if last_unit.is_some_and(|l| idx <= l) {
            return Err(DurationError::Order(s.to_string()));
        }
        last_unit = Some(idx);
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= i64::MAX as u64)
            .ok_or_else(|| DurationError::Range(s.to_string()))?;
    }
    Ok(Duration::from_millis(total))
}

/// Prints a duration like Prometheus (`1h30m`, `0s`, `2w`).
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    // y and w only when they divide exactly, as model.Duration.String does.
    for (unit, size) in UNITS {
        if (unit == "y" || unit == "w") && ms % size != 0 {
            continue;
        }
        if ms >= size {
            out.push_str(&(ms / size).to_string());
            out.push_str(unit);
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_forms() {
        let ok = [
            ("15s", 15_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("0", 0),
            ("500ms", 500),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            ("1h0m0s", 3_600_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse(s), Ok(Duration::from_millis(ms)), "{s}");
        }
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(matches!(
            parse("1.5h"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(parse("1m1h"), Err(DurationError::Order(_))));
        assert!(matches!(parse("1h1h"), Err(DurationError::Order(_))));
        assert!(matches!(parse("h"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("-1s"), Err(DurationError::Invalid(_))));
        assert!(matches!(
            parse("1 s"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse("10"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse("99999999999y"),
            Err(DurationError::Range(_))
        ));
    }

    #[test]
    fn formats_like_prometheus() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_secs(15)), "15s");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(90 * 86400)), "90d");
        assert_eq!(format(Duration::from_secs(14 * 86400)), "2w");
        assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
    }
}
