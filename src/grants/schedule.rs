//! Scheduling: the timers that warn before and end each grant at its exact
//! end instant, expire pending requests, and are rebuilt at start.

use super::service::*;
use super::GrantError;
use crate::sessions::{EndCause, EndReason};
use crate::store::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

impl Grants {
    /// Rebuilds timers at start. Grants whose end passed while the daemon was
    /// down are expired now, recording their own end instant.
    pub async fn restore(self: &Arc<Self>) -> Result<(), GrantError> {
        let now = self.clock.now_ms();
        let mut active = 0;
        for g in self.store.active_grants().await? {
            if g.expires_at_ms <= now {
                self.expire_grant(&g.id).await;
            } else {
                active += 1;
                self.schedule_grant(&g);
            }
        }
        let scheduled = self.store.scheduled_grants().await?;
        for g in &scheduled {
            self.schedule_start(g);
        }
        let pending = self.store.pending_requests().await?;
        for (id, at) in &pending {
            self.schedule_request(id, *at);
        }
        self.metrics.grants_active.set(active);
        self.refresh_unreviewed().await;
        self.metrics.requests_pending.set(pending.len() as i64);
        tracing::info!(
            active_grants = active,
            scheduled_grants = scheduled.len(),
            pending_requests = pending.len(),
            "restored timers from the store"
        );
        Ok(())
    }

    pub(super) fn schedule_grant(self: &Arc<Self>, g: &GrantRecord) {
        let me = self.clone();
        let id = g.id.clone();
        let warn_before = self
            .config
            .get()
            .policy(&g.policy)
            .map(|p| p.warn_before.clone())
            .unwrap_or_default();
        let mut grant = g.clone();
        let task = tokio::spawn(async move {
            // The end is re-read at every wake-up: an extension (here or on
            // a peer) moves it in the session table, and the timer follows
            // instead of ending the grant at its old end.
            'end: loop {
                for w in &warn_before {
                    let at = grant.expires_at_ms - w.as_millis() as i64;
                    if at > me.clock.now_ms() {
                        tokio::time::sleep_until(me.clock.deadline(at)).await;
                        if let Some(later) = me.moved_end(&id, grant.expires_at_ms) {
                            grant.expires_at_ms = later;
                            continue 'end;
                        }
                        let msg = format!(
                            "access to {} ends in {}",
                            grant.target,
                            humantime::format_duration(*w)
                        );
                        me.sessions.warn_grant(&id, &msg);
                        me.notify_expiring(&grant, *w);
                    }
                }
                sleep_precisely_until(me.clock.deadline(grant.expires_at_ms)).await;
                match me.moved_end(&id, grant.expires_at_ms) {
                    Some(later) => grant.expires_at_ms = later,
                    None => break,
                }
            }
            me.timers.done(&id);
            me.expire_grant(&id).await;
        });
        self.timers.set(&g.id, task.abort_handle());
    }

    /// The grant's end if an extension moved it past `end`.
    fn moved_end(&self, id: &str, end: i64) -> Option<i64> {
        self.sessions.known_end(id).filter(|e| *e > end)
    }

    /// Queues `grant.expiring` on its own task: the timer that ends the
    /// grant must never wait on the store.
    fn notify_expiring(&self, g: &GrantRecord, warn: Duration) {
        let store = self.store.clone();
        let event = crate::store::event::grant_expiring(g, warn, self.clock.now_ms());
        tokio::spawn(async move {
            if let Err(e) = store.enqueue_event(&event).await {
                tracing::warn!(grant = %event.fields["grant_id"], error = %e, "grant.expiring notification not queued");
            }
        });
    }

    pub(super) fn schedule_request(self: &Arc<Self>, id: &str, at: i64) {
        let me = self.clone();
        let rid = id.to_string();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(me.clock.deadline(at)).await;
            me.timers.done(&rid);
            me.expire_request(&rid).await;
        });
        self.timers.set(id, task.abort_handle());
    }

    /// Ends a grant at its end instant. Sessions are closed first, from
    /// memory, so expiry never waits on the store; recording it is retried
    /// until the store answers.
    pub async fn expire_grant(&self, id: &str) {
        let n = self
            .sessions
            .end_grant(id, EndCause::new(EndReason::Expired))
            .await;
        let mut backoff = Duration::from_millis(200);
        loop {
            let entry = audit(
                "system",
                "grant.expired",
                id,
                json!({"sessions_terminated": n}),
            );
            match self
                .store
                .end_grant(
                    id,
                    GrantEnd::Expired,
                    "system",
                    "",
                    self.clock.now_ms(),
                    &entry,
                )
                .await
            {
                Ok(_) => {
                    self.metrics.grants_active.dec();
                    self.cancel_extensions_of(id).await;
                    tracing::info!(grant = %id, sessions = n, "grant expired");
                    return;
                }
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(grant = %id, error = %e, "cannot record expiry yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                // Already ended (revoked, or expired by another instance).
                Err(_) => return,
            }
        }
    }

    async fn expire_request(&self, id: &str) {
        let entry = audit("system", "request.expired", id, json!({}));
        if self
            .store
            .close_request(
                id,
                RequestState::Expired,
                "system",
                "pending too long",
                self.clock.now_ms(),
                &entry,
            )
            .await
            .is_ok()
        {
            self.metrics.requests.with_label_values(&["expired"]).inc();
            self.metrics.requests_pending.dec();
        }
    }
}

/// Waits until `target` (a grant's end instant) with sub-millisecond
/// precision. tokio's timer works in whole-millisecond ticks and fires when
/// a worker next parks, which put grant ends ~2 ms late; the last stretch is
/// slept on a blocking thread, whose sleep is precise to tens of µs.
async fn sleep_precisely_until(target: tokio::time::Instant) {
    const COARSE_MARGIN: std::time::Duration = std::time::Duration::from_millis(3);
    if let Some(early) = target.checked_sub(COARSE_MARGIN) {
        tokio::time::sleep_until(early).await;
    }
    let left = target.saturating_duration_since(tokio::time::Instant::now());
    if !left.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await;
    }
}
