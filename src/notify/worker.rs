//! Delivery: one loop per configured receiver, so a slow or dead receiver
//! only ever delays its own deliveries. Each loop claims at most
//! `IN_FLIGHT` due rows under a lease, posts them concurrently, and claims
//! again once they are all settled; concurrency is therefore bounded by
//! receivers × `IN_FLIGHT`, and nothing here runs on an API or proxy path.
//!
//! Delivery is at least once: a row is deleted after its 2xx, so a crash (or
//! a store error) between the answer and the delete sends it again, with the
//! same `X-Jitgate-Delivery` id.

use super::deliver::{self, Delivery};
use crate::clock::now_ms;
use crate::config::{Notify, NotifyFormat, SharedConfig};
use crate::metrics::Metrics;
use crate::store::{OutboxRow, Store};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often an idle receiver loop looks for due rows (rows queued by
/// another instance, or coming due after a backoff).
const POLL: Duration = Duration::from_secs(1);
/// Rows posted at once per receiver.
const IN_FLIGHT: i64 = 4;
/// A lease outlives the delivery timeout by this much, so a lease never
/// lapses while its delivery can still succeed.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// Rows of a receiver that is no longer configured here are dropped once
/// this old (another instance may still deliver them in the meantime).
const ORPHAN_AFTER: Duration = Duration::from_secs(24 * 3600);
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Ctx {
    pub store: Store,
    pub config: SharedConfig,
    pub metrics: Arc<Metrics>,
    /// This process's lease owner token.
    pub owner: String,
}

/// Delay before attempt `attempts + 1`: doubling from `initial` up to
/// `max`, then "equal jitter" (a uniform pick in the upper half), so
/// receivers coming back are not hit by every instance at once. `unit` is
/// a sample from [0, 1).
pub fn backoff(attempts: i64, initial: Duration, max: Duration, unit: f64) -> Duration {
    let shift = attempts.saturating_sub(1).clamp(0, 40) as u32;
    let base = initial
        .as_millis()
        .saturating_mul(1u128 << shift)
        .min(max.as_millis());
    let half = base / 2;
    let jitter = (half as f64 * unit.clamp(0.0, 1.0)) as u128;
    Duration::from_millis((base - half + jitter).min(u64::MAX as u128) as u64)
}

/// Keeps one loop per configured receiver until `stop`, following reloads,
/// then hands back every lease this process holds.
pub(super) async fn supervise(ctx: Arc<Ctx>, stop: CancellationToken) {
    let mut loops: HashMap<String, (CancellationToken, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        let cfg = ctx.config.get();
        loops.retain(|url, (token, _)| {
            let keep = cfg.notify.iter().any(|n| &n.url == url);
            if !keep {
                token.cancel();
            }
            keep
        });
        for n in &cfg.notify {
            if !loops.contains_key(&n.url) {
                let token = stop.child_token();
                let task = tokio::spawn(receiver_loop(ctx.clone(), n.url.clone(), token.clone()));
                loops.insert(n.url.clone(), (token, task));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = sweep.tick() => sweep_orphans(&ctx).await,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    for (_, (_, task)) in loops {
        let _ = task.await;
    }
    match ctx.store.release_outbox(&ctx.owner).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "released notification leases at shutdown"),
        Err(e) => {
            tracing::warn!(error = %e, "could not release notification leases; they lapse by themselves")
        }
    }
}

async fn receiver_loop(ctx: Arc<Ctx>, url: String, stop: CancellationToken) {
    let who = deliver::redact(&url);
    let mut store_down = false;
    loop {
        let Some(n) = ctx
            .config
            .get()
            .notify
            .iter()
            .find(|n| n.url == url)
            .cloned()
        else {
            return;
        };
        let now = now_ms();
        let lease = now + (n.timeout + LEASE_MARGIN).as_millis() as i64;
        let rows = match ctx
            .store
            .claim_outbox(&url, &ctx.owner, now, lease, IN_FLIGHT)
            .await
        {
            Ok(r) => {
                store_down = false;
                r
            }
            Err(e) => {
                if !store_down {
                    tracing::warn!(receiver = %who, error = %e, "cannot read the notification outbox; will retry");
                }
                store_down = true;
                Vec::new()
            }
        };
        if rows.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(POLL) => continue,
            }
        }
        let mut batch = tokio::task::JoinSet::new();
        for row in rows {
            batch.spawn(attempt(ctx.clone(), n.clone(), row));
        }
        tokio::select! {
            // Dropping the set aborts the posts; their leases are released
            // by the supervisor.
            _ = stop.cancelled() => return,
            _ = async { while batch.join_next().await.is_some() {} } => {}
        }
    }
}

async fn attempt(ctx: Arc<Ctx>, n: Notify, row: OutboxRow) {
    let who = deliver::redact(&n.url);
    // Read per attempt, so a rotated secret (with a reload) applies to
    // queued events too. Never logged.
    let secret = n.secret_env.as_ref().and_then(|v| std::env::var(v).ok());
    // Rendered from the stored body: the same bytes (and signature) on
    // every attempt while the config stays.
    let body = match n.format {
        NotifyFormat::Jitgate => row.body.clone(),
        NotifyFormat::Slack => super::slack::render(&row.body, &ctx.config.get().admin.public_url),
    };
    let d = Delivery {
        url: &n.url,
        event: &row.event,
        event_id: &row.event_id,
        body: &body,
        secret: secret.as_deref().map(str::as_bytes),
    };
    let result = deliver::post(&d, n.timeout).await;
    let now = now_ms();
    let settled = match &result {
        Ok(status) => {
            tracing::debug!(receiver = %who, event = %row.event, id = %row.event_id, status, attempts = row.attempts, "notification delivered");
            ctx.metrics
                .notifications
                .with_label_values(&["delivered"])
                .inc();
            ctx.store.finish_outbox(&row.id, &ctx.owner).await
        }
        Err(e) if now - row.created_at_ms >= n.give_up_after.as_millis() as i64 => {
            tracing::error!(receiver = %who, event = %row.event, id = %row.event_id, attempts = row.attempts, error = %e, "notification dropped: still failing after give_up_after");
            ctx.metrics
                .notifications
                .with_label_values(&["dropped"])
                .inc();
            ctx.store.finish_outbox(&row.id, &ctx.owner).await
        }
        Err(e) => {
            let wait = backoff(
                row.attempts,
                n.retry_initial,
                n.retry_max,
                rand::thread_rng().gen(),
            );
            if row.attempts == 1 {
                tracing::warn!(receiver = %who, event = %row.event, id = %row.event_id, error = %e, retry_in = %humantime::format_duration(wait), "notification not delivered; retrying with backoff");
            } else {
                tracing::debug!(receiver = %who, event = %row.event, id = %row.event_id, attempts = row.attempts, error = %e, retry_in = %humantime::format_duration(wait), "notification retry failed");
            }
            ctx.metrics
                .notifications
                .with_label_values(&["retried"])
                .inc();
            ctx.store
                .retry_outbox(
                    &row.id,
                    &ctx.owner,
                    now + wait.as_millis() as i64,
                    &e.to_string(),
                )
                .await
        }
    };
    match settled {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(receiver = %who, id = %row.event_id, "lost the lease on a notification while delivering it; another worker owns it now")
        }
        Err(e) => {
            tracing::warn!(receiver = %who, id = %row.event_id, error = %e, "cannot record a notification attempt; it is retried when its lease lapses")
        }
    }
}

/// Drops rows, older than `ORPHAN_AFTER`, of receivers this instance does
/// not have: with one config for all instances they can never be delivered.
async fn sweep_orphans(ctx: &Ctx) {
    let now = now_ms();
    let before = now - ORPHAN_AFTER.as_millis() as i64;
    let Ok(old) = ctx.store.outbox_receivers_before(before).await else {
        return;
    };
    let cfg = ctx.config.get();
    for (url, _) in old {
        if cfg.notify.iter().any(|n| n.url == url) {
            continue;
        }
        if let Ok(dropped) = ctx.store.drop_outbox_before(&url, before, now).await {
            if dropped > 0 {
                tracing::error!(receiver = %deliver::redact(&url), rows = dropped, "notifications dropped: their receiver is no longer configured");
                ctx.metrics
                    .notifications
                    .with_label_values(&["dropped"])
                    .inc_by(dropped);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_within_the_upper_half() {
        let (i, m) = (Duration::from_secs(1), Duration::from_secs(600));
        assert_eq!(backoff(1, i, m, 0.999_999), Duration::from_millis(999));
        assert_eq!(backoff(1, i, m, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(4, i, m, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(30, i, m, 0.0), Duration::from_secs(300));
        assert_eq!(backoff(i64::MAX, i, m, 0.0), Duration::from_secs(300));
        assert!(backoff(30, i, m, 1.0) <= m);
        assert_eq!(backoff(0, i, m, 0.0), Duration::from_millis(500));
    }
}
