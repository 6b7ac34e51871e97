//! Time formatting as Go prints it in Prometheus's and Alertmanager's JSON.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Go's RFC3339Nano: fractional seconds without trailing zeros.
pub fn rfc3339_nano(t: Option<SystemTime>) -> String {
    match t {
        None => "0001-01-01T00:00:00Z".to_string(),
        Some(t) => {
            let s = humantime::format_rfc3339_nanos(t).to_string();
            // "....ss.123456000Z" -> "....ss.123456Z"
            match s.strip_suffix('Z').and_then(|b| b.split_once('.')) {
                Some((whole, frac)) => {
                    let frac = frac.trim_end_matches('0');
                    if frac.is_empty() {
                        format!("{whole}Z")
                    } else {
                        format!("{whole}.{frac}Z")
                    }
                }
                None => s,
            }
        }
    }
}

/// RFC3339Nano for a ms timestamp.
pub fn rfc3339_ms(ms: i64) -> String {
    rfc3339_nano(Some(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)))
}

/// Parses a time as Prometheus's API takes it (Unix seconds, fractional
/// allowed, or RFC 3339) into ms since the epoch.
pub fn parse_ms(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            return Some((f * 1000.0).round() as i64);
        }
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    Some(d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_nano_trims_zeros_like_go() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_120);
        assert_eq!(rfc3339_nano(Some(t)), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_nano(None), "0001-01-01T00:00:00Z");
    }
}
