//! Grant state changes (expire, revoke) and connect-secret verifiers.

use super::{GrantFilter, GrantRecord, GrantState, RequestRecord, SecretRecord, Store, StoreError};
use crate::audit::AuditEntry;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

pub(super) const COLS: &str = "id, request_id, user_name, target, policy, state, granted_at, expires_at, ended_at, end_reason, ended_by, end_comment, starts_at, review, reviewed_by, review_comment, reviewed_at";

/// `COLS` qualified by a table alias, for joins.
pub(super) fn cols_of(alias: &str) -> String {
    COLS.split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn grant_from_row(row: &AnyRow) -> Result<GrantRecord, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(GrantRecord {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        user: row.try_get("user_name")?,
        target: row.try_get("target")?,
        policy: row.try_get("policy")?,
        state: GrantState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("bad grant state {state:?}")))?,
        granted_at_ms: row.try_get("granted_at")?,
        expires_at_ms: row.try_get("expires_at")?,
        ended_at_ms: row.try_get("ended_at")?,
        end_reason: row.try_get("end_reason")?,
        ended_by: row.try_get("ended_by")?,
        end_comment: row.try_get("end_comment")?,
        starts_at_ms: row.try_get("starts_at")?,
        review: row.try_get("review")?,
        reviewed_by: row.try_get("reviewed_by")?,
        review_comment: row.try_get("review_comment")?,
        reviewed_at_ms: row.try_get("reviewed_at")?,
    })
}

/// Creates the grant of an approved request. It runs from the request's
/// `starts_at` when that is later than `granted_at` (state `scheduled`
/// until then), else from `granted_at`, for the duration asked for. A
/// scheduled window already over at approval is a conflict.
pub(super) async fn insert_grant(
    conn: &mut AnyConnection,
    req: &RequestRecord,
    id: &str,
    granted_at: i64,
) -> Result<GrantRecord, StoreError> {
    let start = req.starts_at_ms.unwrap_or(granted_at);
    let expires_at = start + req.duration_ms;
    if expires_at <= granted_at {
        return Err(StoreError::Conflict(format!(
            "request {} asked for access until {}, which has passed; request access again",
            req.id,
            crate::clock::rfc3339(expires_at)
        )));
    }
    let (state, starts_at) = if start > granted_at {
        (GrantState::Scheduled, Some(start))
    } else {
        (GrantState::Active, req.starts_at_ms)
    };
    sqlx::query(
        "INSERT INTO grants (id, request_id, user_name, target, policy, state, granted_at, expires_at, starts_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(&req.id)
    .bind(&req.requester)
    .bind(&req.target)
    .bind(&req.policy)
    .bind(state.as_str())
    .bind(granted_at)
    .bind(expires_at)
    .bind(starts_at)
    .execute(&mut *conn)
    .await?;
    Ok(GrantRecord {
        id: id.to_string(),
        request_id: req.id.clone(),
        user: req.requester.clone(),
        target: req.target.clone(),
        policy: req.policy.clone(),
        state,
        granted_at_ms: granted_at,
        expires_at_ms: expires_at,
        ended_at_ms: None,
        end_reason: None,
        ended_by: None,
        end_comment: None,
        starts_at_ms: starts_at,
        review: None,
        reviewed_by: None,
        review_comment: None,
        reviewed_at_ms: None,
    })
}

pub(super) async fn load(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<GrantRecord>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM grants WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(grant_from_row).transpose()
}

/// How a grant ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantEnd {
    /// The end instant passed; `ended_at` is the grant's own expires_at, even
    /// when the daemon notices later (it was down), so history stays exact.
    Expired,
    Revoked,
}

impl Store {
    /// Ends an active grant. Returns the ended grant, or a conflict naming
    /// its state when it had already ended (one winner per grant).
    pub async fn end_grant(
        &self,
        id: &str,
        how: GrantEnd,
        by: &str,
        comment: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<GrantRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let res = match how {
            GrantEnd::Revoked => sqlx::query(
                "UPDATE grants SET state = 'revoked', ended_at = $2, end_reason = 'revoked', ended_by = $3, end_comment = $4 WHERE id = $1 AND state IN ('active', 'scheduled')",
            )
            .bind(id)
            .bind(now)
            .bind(by)
            .bind(comment),
            GrantEnd::Expired => sqlx::query(
                "UPDATE grants SET state = 'expired', ended_at = expires_at, end_reason = 'expired', ended_by = $3, end_comment = $4 WHERE id = $1 AND state = 'active' AND expires_at <= $2",
            )
            .bind(id)
            .bind(now)
            .bind(by)
            .bind(comment),
        }
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(match load(&mut tx, id).await? {
                Some(g) if matches!(g.state, GrantState::Active | GrantState::Scheduled) => {
                    StoreError::Conflict(format!("grant {id} has not reached its end time yet"))
                }
                Some(g) => {
                    StoreError::Conflict(format!("grant {id} is already {}", g.state.as_str()))
                }
                None => StoreError::NotFound(format!("grant {id}")),
            });
        }
        super::retired::retire_secrets(&mut tx, id, now).await?;
        self.append(&mut tx, audit, now).await?;
        let g = load(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("grant {id}")))?;
        tx.commit().await?;
        Ok(g)
    }

    pub async fn get_grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load(&mut conn, id).await
    }

    pub async fn list_grants(&self, f: &GrantFilter) -> Result<Vec<GrantRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM grants WHERE ($1 = '' OR state = $1) AND ($2 = '' OR user_name = $2) AND ($3 = '' OR target = $3) ORDER BY granted_at DESC, id LIMIT $4"
        ))
        .bind(f.state.map(|s| s.as_str()).unwrap_or(""))
        .bind(f.user.clone().unwrap_or_default())
        .bind(f.target.clone().unwrap_or_default())
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// Every active grant, for rebuilding expiry timers at start.
    pub async fn active_grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLS} FROM grants WHERE state = 'active'"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// Adds a connect secret's verifiers to an active grant. `rotate`
    /// removes every earlier secret of the grant first; otherwise earlier
    /// ones stay valid, and a grant already holding `max` secrets is a
    /// conflict. Returns how many secrets the grant now holds.
    pub async fn add_secret(
        &self,
        s: &SecretRecord,
        rotate: bool,
        max: usize,
        audit: &AuditEntry,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE grants SET state = state WHERE id = $1 AND state IN ('active', 'scheduled')",
        )
        .bind(&s.grant_id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(match load(&mut tx, &s.grant_id).await? {
                Some(g) => StoreError::Conflict(format!(
                    "grant {} is {}; request access again",
                    g.id,
                    g.state.as_str()
                )),
                None => StoreError::NotFound(format!("grant {}", s.grant_id)),
            });
        }
        if rotate {
            sqlx::query("DELETE FROM connect_secrets WHERE grant_id = $1")
                .bind(&s.grant_id)
                .execute(&mut *tx)
                .await?;
        }
        let held: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM connect_secrets WHERE grant_id = $1")
                .bind(&s.grant_id)
                .fetch_one(&mut *tx)
                .await?;
        if held as usize >= max {
            return Err(StoreError::Conflict(format!(
                "grant {} already holds {max} connect secrets; use `jitgate secret {} --rotate` to replace them all with a new one",
                s.grant_id, s.grant_id
            )));
        }
        sqlx::query("INSERT INTO connect_secrets (sha256, grant_id, scram, issued_at) VALUES ($1, $2, $3, $4)")
            .bind(hex::encode(s.sha256))
            .bind(&s.grant_id)
            .bind(&s.scram)
            .bind(s.issued_at_ms)
            .execute(&mut *tx)
            .await?;
        self.append(&mut tx, audit, s.issued_at_ms).await?;
        tx.commit().await?;
        Ok(held as usize + 1)
    }

    /// The grant's connect secrets, oldest first (retired ones, of an
    /// ended grant, are none: see `retired`).
    pub async fn secrets_of(&self, grant_id: &str) -> Result<Vec<SecretRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT grant_id, sha256, scram, issued_at FROM connect_secrets WHERE grant_id = $1 AND scram <> $2 ORDER BY issued_at, sha256",
        )
        .bind(grant_id)
        .bind(super::RETIRED)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let hexed: String = row.try_get("sha256")?;
                let sha256 = hex::decode(&hexed)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| StoreError::Corrupt("bad secret verifier".into()))?;
                Ok(SecretRecord {
                    grant_id: row.try_get("grant_id")?,
                    sha256,
                    scram: row.try_get("scram")?,
                    issued_at_ms: row.try_get("issued_at")?,
                })
            })
            .collect()
    }

    pub async fn count_active_grants(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM grants WHERE state = 'active'")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
