//! Publishes this instance's sessions as rows of `live_sessions`, so every
//! instance can list and terminate them. Changes go through a bounded queue
//! to one writer that applies them in batches; a slow store never delays a
//! relay. If the queue overflows, or the store lost the rows, the next
//! upkeep tick republishes the whole local table.

use crate::sessions::{EndCause, SessionInfo, SessionObserver};
use crate::store::{LiveSessionRow, RowChange, Store};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const QUEUE: usize = 65_536;
const BATCH: usize = 512;

#[derive(Clone)]
pub struct RowQueue {
    tx: mpsc::Sender<RowChange>,
    pending: Arc<AtomicUsize>,
    /// Set when a change was dropped; upkeep then republishes everything.
    pub(crate) stale: Arc<AtomicBool>,
    instance: Arc<str>,
}

pub fn row_of(s: &SessionInfo, instance: &str) -> LiveSessionRow {
    LiveSessionRow {
        id: s.id.clone(),
        instance: instance.to_string(),
        grant_id: s.grant_id.clone(),
        user: s.user.clone(),
        target: s.target.clone(),
        kind: s.kind.as_str().to_string(),
        client_addr: s.client_addr.clone(),
        granted_at_ms: s.granted_at_ms,
        started_at_ms: s.started_at_ms,
        expires_at_ms: s.expires_at_ms(),
        bytes_in: s.bytes_in.load(Ordering::Relaxed) as i64,
        bytes_out: s.bytes_out.load(Ordering::Relaxed) as i64,
        last_activity_ms: s.last_activity_ms.load(Ordering::Relaxed),
    }
}

impl RowQueue {
    pub fn start(store: Store, instance: String) -> RowQueue {
        let (tx, mut rx) = mpsc::channel::<RowChange>(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let left = pending.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let mut backoff = Duration::from_millis(100);
                while let Err(e) = store.apply_row_changes(&batch).await {
                    tracing::warn!(error = %e, changes = batch.len(), "cannot publish session rows yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                left.fetch_sub(batch.len(), Ordering::AcqRel);
                batch.clear();
            }
        });
        RowQueue {
            tx,
            pending,
            stale: Arc::new(AtomicBool::new(false)),
            instance: instance.into(),
        }
    }

    pub fn push(&self, change: RowChange) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.try_send(change).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.stale.store(true, Ordering::Release);
        }
    }

    /// Waits until queued changes are written, up to `limit`.
    pub async fn flush(&self, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while self.pending.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl SessionObserver for RowQueue {
    fn started(&self, s: &SessionInfo) {
        self.push(RowChange::Insert(row_of(s, &self.instance)));
    }

    fn ended(&self, s: &SessionInfo, _cause: &EndCause) {
        self.push(RowChange::Delete(s.id.clone()));
    }
}
