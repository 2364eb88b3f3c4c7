//! Retention: recordings older than `[recording] retention` (from their
//! end, or their start when a crash left no end) are deleted, each
//! deletion audited as `recording.deleted`. Live recordings are kept.

use super::{files, Recordings};
use crate::audit::AuditEntry;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The pass runs this often at most, and at least every quarter retention.
const MAX_PERIOD: Duration = Duration::from_secs(3600);
const MIN_PERIOD: Duration = Duration::from_secs(1);

pub async fn run(rec: Arc<Recordings>, stop: CancellationToken) {
    loop {
        let period = rec
            .settings()
            .map(|c| (c.retention / 4).clamp(MIN_PERIOD, MAX_PERIOD))
            .unwrap_or(MAX_PERIOD);
        let me = rec.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || pass(&me)).await {
            tracing::warn!(error = %e, "recording retention pass failed");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

/// One pass; returns how many recordings were deleted.
pub fn pass(rec: &Recordings) -> usize {
    let Some(cfg) = rec.settings() else { return 0 };
    let now = crate::clock::now_ms();
    let keep_ms = cfg.retention.as_millis().min(i64::MAX as u128) as i64;
    let mut n = 0;
    for meta in files::list(&cfg.dir) {
        let since = meta.ended_at_ms.unwrap_or(meta.started_at_ms);
        if now.saturating_sub(since) <= keep_ms || rec.live(&meta.id).is_some() {
            continue;
        }
        match files::delete(&cfg.dir, &meta) {
            Ok(()) => {
                n += 1;
                tracing::info!(session = %meta.id, "recording deleted by retention");
                let entry = AuditEntry::new(
                    "system",
                    "recording.deleted",
                    &meta.id,
                    json!({"user": meta.user, "target": meta.target, "kind": meta.kind.as_str(),
                           "sha256": meta.sha256, "bytes": meta.bytes, "retention_seconds": cfg.retention.as_secs()}),
                );
                let store = rec.store().clone();
                tokio::runtime::Handle::current().spawn(async move {
                    if let Err(e) = store.audit(&entry).await {
                        tracing::warn!(error = %e, "audit event not written");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(session = %meta.id, error = %e, "cannot delete an expired recording")
            }
        }
    }
    n
}
