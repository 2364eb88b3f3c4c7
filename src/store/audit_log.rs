//! Appending to and reading the audit chain.

use super::{Store, StoreError};
use crate::audit::{hash_event, AuditEntry, AuditRecord, GENESIS};
use crate::audit_anchor::{Anchor, Checkpoint, MAX_SPAN};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::sync::Arc;

/// Events per transaction in [`Store::audit_batch`]: enough to turn a
/// backlog of thousands into a few dozen commits, few enough that a writer
/// queued behind a batch (a revoke) waits a few milliseconds.
pub const AUDIT_BATCH: usize = 64;
/// How long a written batch's id is kept for its retries to find.
const BATCH_IDS_KEPT_MS: i64 = 24 * 3_600_000;

/// Appends inside the caller's transaction. The UPDATE of the single head row
/// serialises concurrent appenders on both backends, so seq has no gaps and
/// every prev_hash is the hash of the row before. Store code calls it
/// through `Store::append` (notify_hook.rs), which also queues the
/// notifications the event maps to.
pub(super) async fn append(
    conn: &mut AnyConnection,
    entry: &AuditEntry,
    at_ms: i64,
) -> Result<AuditRecord, StoreError> {
    let row = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = row.try_get("seq")?;
    let prev_hash: String = row.try_get("hash")?;
    let detail = entry.detail.to_string();
    let hash = hash_event(
        &prev_hash,
        seq,
        at_ms,
        &entry.actor,
        entry.action,
        &entry.subject,
        &detail,
    );
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(at_ms)
    .bind(&entry.actor)
    .bind(entry.action)
    .bind(&entry.subject)
    .bind(&detail)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(AuditRecord {
        seq,
        at_ms,
        actor: entry.actor.clone(),
        action: entry.action.to_string(),
        subject: entry.subject.clone(),
        detail,
        prev_hash,
        hash,
    })
}

/// Signs a checkpoint of the chain up to `head` inside the caller's
/// transaction, which must hold the head row's lock (an append, or
/// [`Store::audit_checkpoint`]) so checkpoints are written in chain order.
/// The span since the previous checkpoint is recomputed first: the signer
/// never vouches for events that do not hash and link as stored.
pub(super) async fn checkpoint(
    conn: &mut AnyConnection,
    anchor: &Anchor,
    head: (i64, &str),
) -> Result<Option<Checkpoint>, StoreError> {
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoints")
        .fetch_one(&mut *conn)
        .await?;
    let last = last.unwrap_or(0);
    if head.0 <= last {
        return Ok(None);
    }
    let from = last.max(head.0 - MAX_SPAN);
    let rows = sqlx::query(
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit WHERE seq >= $1 AND seq <= $2 ORDER BY seq",
    )
    .bind(from)
    .bind(head.0)
    .fetch_all(&mut *conn)
    .await?;
    let mut span: Vec<AuditRecord> = rows.iter().map(record).collect::<Result<_, _>>()?;
    let mut prev = GENESIS.to_string();
    if from > 0 {
        match span.first() {
            Some(r) if r.seq == from => prev = r.hash.clone(),
            _ => return refuse(from, "is missing"),
        }
        span.remove(0);
    }
    let mut hashes = Vec::with_capacity(span.len());
    for (i, r) in span.iter().enumerate() {
        let h = r.recomputed_hash();
        if r.seq != from + 1 + i as i64 || r.prev_hash != prev || h != r.hash {
            return refuse(r.seq, "does not hash or link as stored");
        }
        prev = h.clone();
        hashes.push(h);
    }
    if hashes.len() as i64 != head.0 - from || prev != head.1 {
        return refuse(head.0, "does not match the chain head");
    }
    let c = anchor.sign(head.0, from, crate::clock::now_ms(), hashes);
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, from_seq, at, instance, head, hashes, public_key, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(c.seq)
    .bind(c.from_seq)
    .bind(c.at_ms)
    .bind(&c.instance)
    .bind(&c.head)
    .bind(c.hashes.join(" "))
    .bind(&c.public_key)
    .bind(&c.signature)
    .execute(&mut *conn)
    .await?;
    Ok(Some(c))
}

/// Signing a broken span would launder it; the event is kept unsigned and
/// `audit --verify` reports it.
fn refuse(seq: i64, what: &str) -> Result<Option<Checkpoint>, StoreError> {
    tracing::error!(seq, "not signing an audit checkpoint: event {seq} {what}");
    Ok(None)
}

fn checkpoint_row(row: &AnyRow) -> Result<Checkpoint, StoreError> {
    let hashes: String = row.try_get("hashes")?;
    Ok(Checkpoint {
        seq: row.try_get("seq")?,
        from_seq: row.try_get("from_seq")?,
        at_ms: row.try_get("at")?,
        instance: row.try_get("instance")?,
        head: row.try_get("head")?,
        hashes: hashes.split_whitespace().map(str::to_string).collect(),
        public_key: row.try_get("public_key")?,
        signature: row.try_get("signature")?,
    })
}

fn record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl Store {
    /// Records an event that is not part of a state change (session start and
    /// end, refused connections).
    pub async fn audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let rec = self.append(&mut tx, entry, crate::clock::now_ms()).await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// Records such events in order in one transaction: the session
    /// writer's backlog after a mass opening or revoke costs one commit per
    /// batch, not one per event. Callers pass at most [`AUDIT_BATCH`], so
    /// the transaction stays short. Each event is appended and routed
    /// exactly as by [`Store::audit`], so the chain stays gap-free; on
    /// error nothing of the batch is written and the caller retries it
    /// whole, under the same `batch_id`. The id is recorded with the batch,
    /// so a retry whose earlier COMMIT did succeed (only its answer was
    /// lost, as a PostgreSQL connection can lose it) writes nothing twice:
    /// it returns no records. Other writers queue at the write gate
    /// (gate.rs) between batches, so a batch delays them by one
    /// transaction at most.
    pub async fn audit_batch(
        &self,
        batch_id: &str,
        entries: &[AuditEntry],
    ) -> Result<Vec<AuditRecord>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let now = crate::clock::now_ms();
        let done: Option<i64> =
            sqlx::query_scalar("SELECT written_at FROM audit_batches WHERE batch_id = $1")
                .bind(batch_id)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let mut recs = Vec::with_capacity(entries.len());
        for e in entries {
            recs.push(self.append(&mut tx, e, crate::clock::now_ms()).await?);
        }
        sqlx::query("INSERT INTO audit_batches (batch_id, written_at) VALUES ($1, $2)")
            .bind(batch_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // A retry comes within seconds; a day is far past any of them.
        sqlx::query("DELETE FROM audit_batches WHERE written_at < $1")
            .bind(now - BATCH_IDS_KEPT_MS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(recs)
    }

    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// (seq, hash) of the newest event according to the chain head.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get("seq")?, row.try_get("hash")?))
    }

    /// Whole-chain verification, read in pages so memory stays bounded per page.
    pub async fn audit_verify(&self) -> Result<crate::audit::Verification, StoreError> {
        let head = self.audit_head().await?;
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self.audit_page(after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            all.extend(page);
        }
        Ok(crate::audit::verify(&all, (head.0, &head.1)))
    }

    /// Makes every later append at a multiple of `CHECKPOINT_EVERY` sign a
    /// checkpoint; set once at start.
    pub fn set_anchor(&self, anchor: Arc<Anchor>) {
        let _ = self.anchor.set(anchor);
    }

    pub fn anchor(&self) -> Option<&Arc<Anchor>> {
        self.anchor.get()
    }

    /// Anchors, every [`crate::audit_anchor::PERIODIC`], the events that
    /// arrived since the newest checkpoint, until `stop`. Here rather than
    /// in audit_anchor, which signs and verifies and must not know the store.
    pub fn spawn_periodic_checkpoints(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::audit_anchor::PERIODIC);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = store.audit_checkpoint().await {
                            tracing::warn!(error = %e, "cannot write an audit checkpoint");
                        }
                    }
                }
            }
        })
    }

    /// Signs a checkpoint of the current head if events arrived since the
    /// newest one (start, periodic, shutdown). Without a signer, does nothing.
    pub async fn audit_checkpoint(&self) -> Result<bool, StoreError> {
        let Some(anchor) = self.anchor.get() else {
            return Ok(false);
        };
        let mut tx = self.begin_write().await?;
        // Takes the head row's lock, as an append does.
        let row = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *tx)
            .await?;
        let (seq, hash): (i64, String) = (row.try_get("seq")?, row.try_get("hash")?);
        let signed = checkpoint(&mut tx, anchor, (seq, &hash)).await?;
        if let Some(c) = &signed {
            self.witness(&mut tx, c).await?;
        }
        tx.commit().await?;
        Ok(signed.is_some())
    }

    /// Queues the checkpoint for the receivers that subscribed to
    /// `audit.checkpoint`, in the transaction that writes it.
    pub(super) async fn witness(
        &self,
        conn: &mut AnyConnection,
        c: &Checkpoint,
    ) -> Result<(), StoreError> {
        use super::event;
        let Some(routing) = self.routing() else {
            return Ok(());
        };
        let to = routing.receivers(event::AUDIT_CHECKPOINT);
        if to.is_empty() {
            return Ok(());
        }
        let e = event::audit_checkpoint(c);
        super::outbox::insert(conn, &e, &routing.instance(), &to).await
    }

    pub async fn audit_checkpoints(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, from_seq, at, instance, head, hashes, public_key, signature FROM audit_checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(checkpoint_row).collect()
    }
}
