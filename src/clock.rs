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
pub fn deadline(at_ms: i64) -> tokio::time::Instant {
    let remaining = at_ms.saturating_sub(now_ms()).max(0) as u64;
    tokio::time::Instant::now() + Duration::from_millis(remaining)
}
