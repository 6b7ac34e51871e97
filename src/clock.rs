//! The wall clock, in one place: every timestamp augur takes (samples,
//! rule slots, run schedules, decisions, audit rows) comes from
//! [`now_ms`]. Pure modules never call it; they get time as an argument.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
