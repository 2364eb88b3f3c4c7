//! Scheduled access: each scheduled grant has a timer that makes it active
//! at its `starts_at` instant (then its end timer takes over). Timers are
//! rebuilt from the store at start, like the end timers, so a restart in
//! between loses nothing; a start passed while the daemon was down is made
//! at once.
//!
//! Admission does not wait for the timer: a scheduled grant whose start has
//! passed is in force (`GrantRecord::in_force`), so a timer that runs late
//! (a store outage) delays only the state shown, never the access.

use super::service::*;
use crate::clock::rfc3339;
use crate::store::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The start timer's key: the grant's end timer uses the grant id.
pub(super) fn start_key(id: &str) -> String {
    format!("start:{id}")
}

impl Grants {
    pub(super) fn schedule_start(self: &Arc<Self>, g: &GrantRecord) {
        let me = self.clone();
        let grant = g.clone();
        let key = start_key(&g.id);
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(me.clock.deadline(grant.start_ms())).await;
            me.timers.done(&start_key(&grant.id));
            me.start_grant(&grant).await;
        });
        self.timers.set(&key, task.abort_handle());
    }

    /// Records the start (retrying while the store is unavailable), then
    /// counts the grant and schedules its end.
    async fn start_grant(self: &Arc<Self>, g: &GrantRecord) {
        let entry = audit(
            "system",
            "grant.activated",
            &g.id,
            json!({"user": g.user, "target": g.target, "starts_at": rfc3339(g.start_ms()), "expires_at": rfc3339(g.expires_at_ms)}),
        );
        let mut backoff = Duration::from_millis(200);
        loop {
            match self
                .store
                .activate_grant(&g.id, self.clock.now_ms(), &entry)
                .await
            {
                Ok(Some(active)) => {
                    self.metrics.grants_active.inc();
                    self.schedule_grant(&active);
                    tracing::info!(grant = %g.id, user = %g.user, target = %g.target, "scheduled grant started");
                    return;
                }
                // Revoked before its start, or started by another instance
                // (which counts it; this one still needs its end timer).
                Ok(None) => {
                    if let Ok(Some(cur)) = self.store.get_grant(&g.id).await {
                        if cur.state == GrantState::Active && !self.timers.contains(&g.id) {
                            self.schedule_grant(&cur);
                        }
                    }
                    return;
                }
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(grant = %g.id, error = %e, "cannot record a scheduled start yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::error!(grant = %g.id, error = %e, "scheduled start not recorded");
                    return;
                }
            }
        }
    }
}
