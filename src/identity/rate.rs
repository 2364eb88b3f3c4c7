//! A per-source budget for the unauthenticated sign-in routes (/auth/*):
//! each login writes a row and each failure an audit event, so one source
//! gets at most `PER_WINDOW` requests per `WINDOW`.

use crate::proxy::sources::Source;
use dashmap::DashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const PER_WINDOW: u32 = 60;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Beyond this many tracked sources, stale ones are pruned.
const PRUNE_AT: usize = 100_000;

#[derive(Default)]
pub struct SourceBudget {
    entries: DashMap<Source, (u32, Instant)>,
}

impl SourceBudget {
    /// Spends one request of `ip`'s budget; false when it is spent.
    pub fn spend(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        if self.entries.len() > PRUNE_AT {
            self.entries.retain(|_, (_, start)| now - *start < WINDOW);
        }
        let mut e = self.entries.entry(Source::of(ip)).or_insert((0, now));
        if now - e.1 >= WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
        e.0 <= PER_WINDOW
    }
}
