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

/// Where the session engine and the control plane read the time: wall-clock
/// milliseconds (grant ends are wall-clock instants) and the tokio deadline
/// a timer sleeps until for such an instant. Injected (the session table
/// holds one, the control plane shares it), so a test can run expiry on
/// tokio's paused clock and check it to the millisecond without waiting.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
    /// The tokio deadline of the wall-clock instant `at_ms`; in the past
    /// means now.
    fn deadline(&self, at_ms: i64) -> tokio::time::Instant;
}

/// The clock handle every holder shares.
pub type SharedClock = std::sync::Arc<dyn Clock>;

/// The system's wall clock: the daemon's.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }

    fn deadline(&self, at_ms: i64) -> tokio::time::Instant {
        deadline(at_ms)
    }
}

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    std::sync::Arc::new(SystemClock)
}

/// A wall clock that moves only with tokio's clock, from `start_ms` at its
/// creation: under `tokio::time::pause` time advances exactly from one
/// timer to the next, so expiry can be checked at deadline - 1 ms and at
/// the deadline. For tests.
pub struct TokioClock {
    start_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start_ms: i64) -> SharedClock {
        std::sync::Arc::new(TokioClock {
            start_ms,
            start: tokio::time::Instant::now(),
        })
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + self.start.elapsed().as_millis() as i64
    }

    fn deadline(&self, at_ms: i64) -> tokio::time::Instant {
        self.start + Duration::from_millis(at_ms.saturating_sub(self.start_ms).max(0) as u64)
    }
}
