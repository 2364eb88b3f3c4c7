//! Request state changes: create (optionally auto-approved), approve, deny,
//! cancel, expire. Each is one transaction that checks the state it changes.

use super::grants::insert_grant;
use super::request_rows::{insert_request, load, COLS};
use super::{
    ApproveOutcome, NewRequest, RequestFilter, RequestRecord, RequestState, Store, StoreError,
};
use crate::audit::AuditEntry;
use sqlx::{AnyConnection, Row};

/// Explains why a conditional update matched nothing.
async fn not_pending(conn: &mut AnyConnection, id: &str, verb: &str) -> StoreError {
    match load(conn, id).await {
        Ok(Some(r)) if r.state == RequestState::Pending => StoreError::Conflict(format!(
            "request {id} expired while pending; it can no longer be {verb}"
        )),
        Ok(Some(r)) => StoreError::Conflict(format!(
            "request {id} is {}; it can no longer be {verb}",
            r.state.as_str()
        )),
        Ok(None) => StoreError::NotFound(format!("request {id}")),
        Err(e) => e,
    }
}

/// Locks the pending request row for this transaction (no-op UPDATE).
async fn lock_pending(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
    verb: &str,
) -> Result<(), StoreError> {
    let res = sqlx::query(
        "UPDATE requests SET state = state WHERE id = $1 AND state = 'pending' AND expires_at > $2",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if res.rows_affected() == 0 {
        return Err(not_pending(conn, id, verb).await);
    }
    Ok(())
}

impl Store {
    /// Inserts a request; when `auto_grant` is given (approvals_required = 0)
    /// the request is approved and its grant created in the same transaction.
    pub async fn create_request(
        &self,
        req: &NewRequest,
        auto_grant: Option<&str>,
        audit: &[AuditEntry],
    ) -> Result<(RequestRecord, Option<super::GrantRecord>), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_request(&mut tx, req).await?;
        let mut grant = None;
        if let Some(grant_id) = auto_grant {
            let by = if req.break_glass {
                "break-glass"
            } else {
                "policy"
            };
            sqlx::query("UPDATE requests SET state = 'approved', decided_at = $2, decided_by = $4, grant_id = $3 WHERE id = $1")
                .bind(&req.id)
                .bind(req.created_at_ms)
                .bind(grant_id)
                .bind(by)
                .execute(&mut *tx)
                .await?;
            let rec = load(&mut tx, &req.id)
                .await?
                .ok_or_else(|| StoreError::NotFound(req.id.clone()))?;
            let mut g = insert_grant(&mut tx, &rec, grant_id, req.created_at_ms).await?;
            if req.break_glass {
                sqlx::query("UPDATE grants SET review = 'pending' WHERE id = $1")
                    .bind(grant_id)
                    .execute(&mut *tx)
                    .await?;
                g.review = Some("pending".into());
            }
            grant = Some(g);
        }
        for e in audit {
            self.append(&mut tx, e, req.created_at_ms).await?;
        }
        let rec = load(&mut tx, &req.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(req.id.clone()))?;
        tx.commit().await?;
        Ok((rec, grant))
    }
}

impl Store {
    /// Records one approval. Two approvers racing for the last needed approval
    /// serialise on the request row: exactly one creates the grant, the other
    /// sees `approved` and gets a conflict.
    /// An approval that completes an extension moves its grant's end
    /// instead (`max_total_ms` caps the grant's whole length then).
    #[allow(clippy::too_many_arguments)]
    pub async fn approve(
        &self,
        id: &str,
        approver: &str,
        comment: &str,
        now: i64,
        grant_id: &str,
        max_total_ms: i64,
        audit: &AuditEntry,
    ) -> Result<ApproveOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        lock_pending(&mut tx, id, now, "approved").await?;
        let inserted = sqlx::query(
            "INSERT INTO approvals (request_id, approver, comment, at) VALUES ($1, $2, $3, $4) ON CONFLICT (request_id, approver) DO NOTHING",
        )
        .bind(id)
        .bind(approver)
        .bind(comment)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "{approver} has already approved request {id}; another approver is needed"
            )));
        }
        self.append(&mut tx, audit, now).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE request_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let rec = load(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("request {id}")))?;
        if count < rec.approvals_required {
            tx.commit().await?;
            return Ok(ApproveOutcome::Recorded(Box::new(rec)));
        }
        if let Some(extended) = rec.extends_grant.clone() {
            let (g, before) = super::extensions::apply(
                self,
                &mut tx,
                &rec,
                &extended,
                approver,
                now,
                max_total_ms,
            )
            .await?;
            let rec = load(&mut tx, id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("request {id}")))?;
            tx.commit().await?;
            return Ok(ApproveOutcome::Extended(Box::new(rec), Box::new(g), before));
        }
        sqlx::query("UPDATE requests SET state = 'approved', decided_at = $2, decided_by = $3, grant_id = $4 WHERE id = $1 AND state = 'pending'")
            .bind(id)
            .bind(now)
            .bind(approver)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
        let grant = insert_grant(&mut tx, &rec, grant_id, now).await?;
        let granted = AuditEntry::new(
            approver,
            "grant.created",
            grant_id,
            serde_json::json!({"request": id, "user": rec.requester, "target": rec.target, "expires_at": crate::clock::rfc3339(grant.expires_at_ms)}),
        );
        self.append(&mut tx, &granted, now).await?;
        let rec = load(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("request {id}")))?;
        tx.commit().await?;
        Ok(ApproveOutcome::Granted(Box::new(rec), Box::new(grant)))
    }

    /// Moves a pending request to a terminal state (denied, cancelled, expired).
    pub async fn close_request(
        &self,
        id: &str,
        to: RequestState,
        by: &str,
        reason: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<RequestRecord, StoreError> {
        let verb = to.as_str();
        let mut tx = self.begin_write().await?;
        // Expiry applies to requests past their deadline; the others only before it.
        let deadline_clause = if to == RequestState::Expired {
            "expires_at <= $5"
        } else {
            "expires_at > $5"
        };
        let res = sqlx::query(&format!(
            "UPDATE requests SET state = $2, decided_at = $5, decided_by = $3, decision_reason = $4 WHERE id = $1 AND state = 'pending' AND {deadline_clause}"
        ))
        .bind(id)
        .bind(verb)
        .bind(by)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(not_pending(&mut tx, id, verb).await);
        }
        self.append(&mut tx, audit, now).await?;
        let rec = load(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("request {id}")))?;
        tx.commit().await?;
        Ok(rec)
    }

    pub async fn get_request(&self, id: &str) -> Result<Option<RequestRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load(&mut conn, id).await
    }

    /// Newest first, at most `filter.limit` rows.
    pub async fn list_requests(
        &self,
        filter: &RequestFilter,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM requests WHERE ($1 = '' OR state = $1) AND ($2 = '' OR requester = $2) ORDER BY created_at DESC, id LIMIT $3"
        ))
        .bind(filter.state.map(|s| s.as_str()).unwrap_or(""))
        .bind(filter.requester.clone().unwrap_or_default())
        .bind(filter.limit)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            if let Some(r) = load(&mut conn, &id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Pending requests, for rebuilding their expiry timers at start.
    pub async fn pending_requests(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT id, expires_at FROM requests WHERE state = 'pending'")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("expires_at")?)))
            .collect()
    }

    pub async fn count_pending(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
