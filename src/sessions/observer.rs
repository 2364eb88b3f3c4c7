//! Session start/end side effects: metrics, and audit events handed to a
//! writer task through a bounded queue so a slow store never delays a relay
//! or a termination. If the queue is full the event is logged as lost (and
//! counted in the log); the session itself is unaffected. The writer
//! appends whatever queued while its previous write ran in one transaction
//! (`Store::audit_batch`); the store's write gate lets other writers (a
//! revoke) in between batches.

use super::table::{SessionInfo, SessionObserver};
use super::{EndCause, EndReason};
use crate::audit::AuditEntry;
use crate::metrics::Metrics;
use crate::store::{Store, AUDIT_BATCH};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct Recorder {
    metrics: Arc<Metrics>,
    audit: mpsc::Sender<AuditEntry>,
    /// Events queued or being written; shutdown waits for zero.
    pending: Arc<AtomicUsize>,
}

pub const AUDIT_QUEUE: usize = 65_536;

impl Recorder {
    /// Returns the observer and spawns its audit writer.
    pub fn start(metrics: Arc<Metrics>, store: Store) -> Arc<Recorder> {
        let (tx, mut rx) = mpsc::channel::<AuditEntry>(AUDIT_QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let left = pending.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(AUDIT_BATCH);
            while let Some(first) = rx.recv().await {
                // Whatever queued while the previous write ran goes in this
                // one transaction (up to AUDIT_BATCH).
                batch.push(first);
                while batch.len() < AUDIT_BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let mut backoff = std::time::Duration::from_millis(100);
                // One id for every try: a retry after a COMMIT that landed
                // but whose answer was lost writes nothing twice.
                let batch_id = crate::ids::batch_id();
                loop {
                    match store.audit_batch(&batch_id, &batch).await {
                        Ok(_) => {
                            left.fetch_sub(batch.len(), Ordering::AcqRel);
                            batch.clear();
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, events = batch.len(), "audit write failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                        }
                    }
                }
            }
        });
        Arc::new(Recorder {
            metrics,
            audit: tx,
            pending,
        })
    }

    fn send(&self, e: AuditEntry) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(err) = self.audit.try_send(e) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(error = %err, "audit queue full; session event not recorded");
        }
    }

    /// Waits until every queued event is in the store, or `limit` passes;
    /// returns how many were left unwritten. Shutdown calls it after ending
    /// the sessions so their `session.ended` events are not lost.
    pub async fn drain(&self, limit: std::time::Duration) -> usize {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let n = self.pending.load(Ordering::Acquire);
            if n == 0 || tokio::time::Instant::now() >= until {
                return n;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

fn is_grant_end(r: EndReason) -> bool {
    matches!(
        r,
        EndReason::Expired
            | EndReason::Revoked
            | EndReason::Terminated
            | EndReason::Locked
            | EndReason::PolicyChanged
            | EndReason::Shutdown
            | EndReason::Idle
    )
}

impl SessionObserver for Recorder {
    fn started(&self, s: &SessionInfo) {
        let kind = s.kind.as_str();
        self.metrics
            .sessions_active
            .with_label_values(&[kind, &s.target])
            .inc();
        self.metrics
            .sessions_started
            .with_label_values(&[kind, &s.target])
            .inc();
        tracing::info!(session = %s.id, user = %s.user, target = %s.target, client = %s.client_addr, "session started");
        let mut detail =
            json!({"grant": s.grant_id, "target": s.target, "kind": kind, "client": s.client_addr});
        if let Some(u) = s.upstream_detail.get() {
            detail["upstream"] = u.clone();
        }
        self.send(AuditEntry::new(&s.user, "session.started", &s.id, detail));
    }

    fn ended(&self, s: &SessionInfo, cause: &EndCause) {
        let kind = s.kind.as_str();
        let (bin, bout) = (
            s.bytes_in.load(Ordering::Relaxed),
            s.bytes_out.load(Ordering::Relaxed),
        );
        self.metrics
            .sessions_active
            .with_label_values(&[kind, &s.target])
            .dec();
        self.metrics
            .sessions_ended
            .with_label_values(&[kind, cause.reason.as_str()])
            .inc();
        self.metrics
            .bytes
            .with_label_values(&[kind, "in"])
            .inc_by(bin);
        self.metrics
            .bytes
            .with_label_values(&[kind, "out"])
            .inc_by(bout);
        if is_grant_end(cause.reason) {
            self.metrics
                .termination_seconds
                .with_label_values(&[cause.reason.as_str()])
                .observe(cause.at.elapsed().as_secs_f64());
        }
        tracing::info!(session = %s.id, user = %s.user, target = %s.target, reason = cause.reason.as_str(), bytes_in = bin, bytes_out = bout, "session ended: {cause}");
        let mut detail = json!({
            "grant": s.grant_id, "target": s.target, "kind": kind, "reason": cause.reason.as_str(),
            "message": cause.to_string(), "bytes_in": bin, "bytes_out": bout,
        });
        if let Some(u) = s.upstream_detail.get() {
            detail["upstream"] = u.clone();
        }
        for extra in [s.end_detail.get(), s.recording_detail.get()] {
            if let Some(serde_json::Value::Object(extra)) = extra {
                for (k, v) in extra {
                    detail[k.as_str()] = v.clone();
                }
            }
        }
        self.send(AuditEntry::new(&s.user, "session.ended", &s.id, detail));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer takes what queued in batches; every event lands once, in
    /// the order sent, the chain verifies, and `drain` sees zero only when
    /// all of them are in the store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_batches_in_order_and_drains_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/a.db", dir.path().display());
        let store = Store::connect(&url, 4).await.expect("store");
        let rec = Recorder::start(Arc::new(Metrics::new()), store.clone());
        const N: usize = 3_000;
        for i in 0..N {
            rec.send(AuditEntry::new(
                "u",
                "session.started",
                &i.to_string(),
                json!({}),
            ));
        }
        assert_eq!(rec.drain(std::time::Duration::from_secs(120)).await, 0);
        assert_eq!(rec.pending.load(Ordering::Acquire), 0);
        let v = store.audit_verify().await.expect("verify");
        assert!(v.ok && v.events == N as i64, "{v:?}");
        let page = store.audit_page(0, N as i64 + 1).await.expect("page");
        let subjects: Vec<String> = page.into_iter().map(|r| r.subject).collect();
        assert_eq!(subjects, (0..N).map(|i| i.to_string()).collect::<Vec<_>>());
    }
}
