//! A per-source budget for the unauthenticated sign-in routes (/auth/*):
//! each login writes a row and each failure an audit event, so one source
//! gets at most `PER_WINDOW` requests per `WINDOW`.

use crate::proxy::sources::Source;
use dashmap::DashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const PER_WINDOW: u32 = 120;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_budget_and_no_more_and_others_are_untouched() {
        let b = SourceBudget::default();
        let one: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let other: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for _ in 0..PER_WINDOW {
            assert!(b.spend(one));
        }
        assert!(!b.spend(one));
        assert!(b.spend(other));
        // IPv6: one /64 is one source.
        let a: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 16]));
        let same64: IpAddr = "2001:db8::2".parse().unwrap_or(IpAddr::from([0; 16]));
        for _ in 0..PER_WINDOW {
            assert!(b.spend(a));
        }
        assert!(!b.spend(same64));
    }
}
