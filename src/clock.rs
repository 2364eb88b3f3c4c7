//! Wall-clock helpers. Grant end instants are wall-clock (they are shown to
//! people and stored); timers convert them to monotonic deadlines once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC with millisecond precision, as the API promises.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Monotonic deadline for a wall-clock instant; in the past means now.
/// Computed from microseconds: truncating "now" to whole milliseconds added
/// up to a millisecond to every expiry (tokio's timer adds its own tick).
pub fn deadline(at_ms: i64) -> tokio::time::Instant {
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let remaining = at_ms.saturating_mul(1000).saturating_sub(now_us).max(0) as u64;
    tokio::time::Instant::now() + Duration::from_micros(remaining)
}
