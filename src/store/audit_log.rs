//! Appending to and reading the audit chain.

use super::{Store, StoreError};
use crate::audit::{hash_event, AuditEntry, AuditRecord};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

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
        let mut tx = self.pool.begin().await?;
        let rec = self.append(&mut tx, entry, crate::clock::now_ms()).await?;
        tx.commit().await?;
        Ok(rec)
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
}
