//! Failed-authentication limiter shared by the front ends: after
//! `MAX_FAILURES` failures within `WINDOW` for a key, further attempts under
//! that key are refused for `BLOCK` without checking the credential, which
//! bounds brute force and the audit events it can cause.
//!
//! The caller chooses the keys, and the choice decides who can spend whose
//! budget: a key built from unauthenticated input (a user name typed into a
//! startup packet) lets anyone lock that user out from anywhere. PostgreSQL
//! therefore keys failures by source only ([`source_key`]: an IPv4 address
//! or an IPv6 /64): an attacker exhausts only their own source's budget.
//! Connect secrets are 256-bit random, so the per-user budget that would
//! slow a guesser spread over many sources protects nothing worth the
//! lockout it hands out (and a per-user block would tell an unauthenticated
//! client which users have grants).

use dashmap::DashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const BLOCK: Duration = Duration::from_secs(60);
/// Beyond this many tracked keys, stale ones are pruned.
const PRUNE_AT: usize = 100_000;

/// The limiter key of a client's source address (IPv6 grouped by /64, as
/// the per-source connection cap does).
pub fn source_key(ip: IpAddr) -> String {
    format!("source:{:?}", crate::proxy::sources::Source::of(ip))
}

#[derive(Default)]
pub struct AuthLimiter {
    entries: DashMap<String, Entry>,
}

struct Entry {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

impl AuthLimiter {
    /// Err(time left) when any key is blocked.
    pub fn check(&self, keys: &[String]) -> Result<(), Duration> {
        let now = Instant::now();
        for k in keys {
            if let Some(e) = self.entries.get(k) {
                if let Some(until) = e.blocked_until {
                    if until > now {
                        return Err(until - now);
                    }
                }
            }
        }
        Ok(())
    }

    /// Records a failure; returns true when it newly blocks a key.
    pub fn failed(&self, keys: &[String]) -> bool {
        let now = Instant::now();
        if self.entries.len() > PRUNE_AT {
            self.entries.retain(|_, e| {
                now.duration_since(e.window_start) < WINDOW
                    || e.blocked_until.is_some_and(|u| u > now)
            });
        }
        let mut blocked = false;
        for k in keys {
            let mut e = self.entries.entry(k.clone()).or_insert(Entry {
                failures: 0,
                window_start: now,
                blocked_until: None,
            });
            if now.duration_since(e.window_start) >= WINDOW {
                e.failures = 0;
                e.window_start = now;
            }
            e.failures += 1;
            if e.failures >= MAX_FAILURES && e.blocked_until.is_none_or(|u| u <= now) {
                e.blocked_until = Some(now + BLOCK);
                e.failures = 0;
                e.window_start = now;
                blocked = true;
            }
        }
        blocked
    }

    /// A success clears `key`'s count. SSH calls it for the source once a
    /// key or certificate identifies an engineer (see `proxy::ssh::login`).
    pub fn succeeded(&self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_per_key() {
        let l = AuthLimiter::default();
        let keys = vec!["ip:10.0.0.1".to_string(), "user:alice".to_string()];
        for _ in 0..MAX_FAILURES - 1 {
            assert!(!l.failed(&keys));
            assert!(l.check(&keys).is_ok());
        }
        assert!(l.failed(&keys));
        assert!(l.check(&keys).is_err());
        assert!(l.check(&["user:alice".to_string()]).is_err());
        assert!(l
            .check(&["ip:10.0.0.2".to_string(), "user:bob".to_string()])
            .is_ok());
    }

    #[test]
    fn source_keys_group_ipv6_by_64_and_keep_sources_apart() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            source_key(ip("2001:db8::1")),
            source_key(ip("2001:db8::ffff"))
        );
        assert_ne!(
            source_key(ip("2001:db8::1")),
            source_key(ip("2001:db8:0:1::1"))
        );
        assert_eq!(
            source_key(ip("::ffff:10.0.0.1")),
            source_key(ip("10.0.0.1"))
        );
        let l = AuthLimiter::default();
        let attacker = vec![source_key(ip("10.0.0.2"))];
        for _ in 0..MAX_FAILURES {
            l.failed(&attacker);
        }
        assert!(l.check(&attacker).is_err());
        assert!(l.check(&[source_key(ip("10.0.0.1"))]).is_ok());
    }
}
