//! A scheduled grant's refusal before its start, seen by a real client.
//!
//! The client must be refused while the grant is still scheduled, so its
//! whole attempt has to end before the start; on a loaded 2-core machine a
//! client (psql, ssh) can take seconds just to start. An attempt that ends
//! after the start proves nothing either way (it may have been admitted
//! after the start), so it is made again on a new grant starting twice as
//! far out, the old one revoked first (an SSH login picks any grant of the
//! user's for the target). The assertions stay with the caller.

use super::daemon::Daemon;
use super::lifecycle::{now_ms, scheduled_grant};

/// The first lead of the start over now, in ms; doubled on each retry.
const FIRST_LEAD_MS: i64 = 4_000;
/// A lead past this fails the test: no client attempt that long is normal.
const MAX_LEAD_MS: i64 = 64_000;

/// Runs `attempt(secret)` on a grant of `token`'s for `target` (5 minutes,
/// scheduled a few seconds ahead) until one attempt ends before its
/// grant's start; returns that grant's secret and start, and what the
/// attempt returned.
pub fn attempt_before_start<R>(
    d: &Daemon,
    token: &str,
    target: &str,
    mut attempt: impl FnMut(&str) -> R,
) -> (String, i64, R) {
    let mut lead = FIRST_LEAD_MS;
    loop {
        let (gid, secret, start) = scheduled_grant(d, token, target, lead, "5m");
        let r = attempt(&secret);
        if now_ms() < start {
            return (secret, start, r);
        }
        assert!(
            lead < MAX_LEAD_MS,
            "no attempt ended before its grant's start, {lead} ms ahead"
        );
        eprintln!("the attempt ended after its grant's start ({lead} ms ahead): again, later");
        d.revoke(&gid, "a later start for the test");
        lead *= 2;
    }
}
