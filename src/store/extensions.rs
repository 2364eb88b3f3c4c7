//! Extension in place: an approved extension request moves its grant's
//! `expires_at` (and the shared session rows' copy) in the transaction that
//! approves it, checking the grant's state and the policy's `max_total`
//! there, so two extensions racing cannot together pass the cap.

use super::grants::load as load_grant;
use super::request_rows::{insert_request, load as load_request};
use super::{GrantRecord, NewRequest, RequestRecord, Store, StoreError};
use crate::audit::AuditEntry;
use crate::clock::rfc3339;
use sqlx::{AnyConnection, Row};

/// An extension is refused when its grant ends sooner than this: the end
/// may already be under way on some instance (its timer fires on its own
/// clock, without asking the store), and a peer that missed the message
/// needs one re-check (`cluster::HEARTBEAT`) to learn the new end.
pub const EXTEND_GUARD_MS: i64 = 2_000;

/// Moves `grant_id`'s end by the request's duration and marks the request
/// approved by `approver`, inside the caller's transaction. Returns the
/// extended grant and its end before.
pub(super) async fn apply(
    store: &Store,
    conn: &mut AnyConnection,
    rec: &RequestRecord,
    grant_id: &str,
    approver: &str,
    now: i64,
    max_total_ms: i64,
) -> Result<(GrantRecord, i64), StoreError> {
    let g = load_grant(conn, grant_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("grant {grant_id}")))?;
    if g.state != super::GrantState::Active {
        return Err(StoreError::Conflict(format!(
            "grant {grant_id} is {}; an ended grant cannot be extended: request access again",
            g.state.as_str()
        )));
    }
    if g.expires_at_ms <= now + EXTEND_GUARD_MS {
        return Err(StoreError::Conflict(format!(
            "grant {grant_id} ends at {}, too soon to extend; request access again",
            rfc3339(g.expires_at_ms)
        )));
    }
    let before = g.expires_at_ms;
    let after = before + rec.duration_ms;
    if after - g.start_ms() > max_total_ms {
        return Err(StoreError::Conflict(format!(
            "extending grant {grant_id} by {} would make it last {}, past policy {}'s max_total of {}",
            human(rec.duration_ms),
            human(after - g.start_ms()),
            g.policy,
            human(max_total_ms)
        )));
    }
    let res = sqlx::query(
        "UPDATE grants SET expires_at = $2, extended_at = $3 WHERE id = $1 AND state = 'active' AND expires_at = $4",
    )
    .bind(grant_id)
    .bind(after)
    .bind(now)
    .bind(before)
    .execute(&mut *conn)
    .await?;
    if res.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "grant {grant_id} changed while being extended; retry"
        )));
    }
    sqlx::query("UPDATE live_sessions SET expires_at = $2 WHERE grant_id = $1")
        .bind(grant_id)
        .bind(after)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE requests SET state = 'approved', decided_at = $2, decided_by = $3, grant_id = $4 WHERE id = $1 AND state = 'pending'")
        .bind(&rec.id)
        .bind(now)
        .bind(approver)
        .bind(grant_id)
        .execute(&mut *conn)
        .await?;
    let entry = AuditEntry::new(
        approver,
        "grant.extended",
        grant_id,
        serde_json::json!({
            "request": rec.id,
            "user": g.user,
            "target": g.target,
            "added_seconds": rec.duration_ms / 1000,
            "previous_expires_at": rfc3339(before),
            "expires_at": rfc3339(after),
            "reason": rec.reason,
        }),
    );
    store.append(conn, &entry, now).await?;
    let g = load_grant(conn, grant_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("grant {grant_id}")))?;
    Ok((g, before))
}

fn human(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs((ms.max(0) / 1000) as u64))
        .to_string()
}

impl Store {
    /// Inserts an extension request; with `auto` (the policy needs no
    /// approval: its max_total) it is approved and applied at once, in
    /// the same transaction.
    pub async fn create_extension(
        &self,
        req: &NewRequest,
        auto: Option<i64>,
        audit: &[AuditEntry],
    ) -> Result<(RequestRecord, Option<(GrantRecord, i64)>), StoreError> {
        let grant_id = req
            .extends_grant
            .clone()
            .ok_or_else(|| StoreError::Conflict("an extension names its grant".into()))?;
        let mut tx = self.begin_write().await?;
        insert_request(&mut tx, req).await?;
        for e in audit {
            self.append(&mut tx, e, req.created_at_ms).await?;
        }
        let mut extended = None;
        if let Some(max_total_ms) = auto {
            let rec = load_request(&mut tx, &req.id)
                .await?
                .ok_or_else(|| StoreError::NotFound(req.id.clone()))?;
            extended = Some(
                apply(
                    self,
                    &mut tx,
                    &rec,
                    &grant_id,
                    "policy",
                    req.created_at_ms,
                    max_total_ms,
                )
                .await?,
            );
        }
        let rec = load_request(&mut tx, &req.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(req.id.clone()))?;
        tx.commit().await?;
        Ok((rec, extended))
    }

    /// Cancels the pending extensions of a grant that ended: they can no
    /// longer be approved, and should not wait in approvers' lists. Returns
    /// the cancelled requests' ids.
    pub async fn cancel_extensions(
        &self,
        grant_id: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = sqlx::query(
            "UPDATE requests SET state = 'cancelled', decided_at = $2, decided_by = 'system', decision_reason = 'the grant ended' WHERE extends_grant = $1 AND state = 'pending' RETURNING id",
        )
        .bind(grant_id)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
        for id in &ids {
            let entry = AuditEntry::new(
                "system",
                "request.cancelled",
                id,
                serde_json::json!({"reason": "the grant ended", "grant": grant_id}),
            );
            self.append(&mut tx, &entry, now).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Active grants extended at or after `since`, with their end: the
    /// re-check's backstop for an extension message a peer missed.
    pub async fn grants_extended_since(
        &self,
        since: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query(
            "SELECT id, expires_at FROM grants WHERE extended_at >= $1 AND state = 'active'",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("expires_at")?)))
        .collect()
    }
}
