//! User locks. Locking revokes the user's active grants and cancels their
//! pending requests in the same transaction, so no grant slips through.

use super::{LockRecord, Store, StoreError};
use crate::audit::AuditEntry;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct LockOutcome {
    pub revoked_grants: Vec<String>,
    pub cancelled_requests: Vec<String>,
}

impl Store {
    pub async fn lock_user(
        &self,
        user: &str,
        by: &str,
        reason: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<LockOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        // Upsert first: it takes the write lock and keeps the first lock's
        // record if the user was already locked (locking twice is harmless).
        sqlx::query(
            "INSERT INTO user_locks (user_name, reason, locked_by, locked_at) VALUES ($1, $2, $3, $4) ON CONFLICT (user_name) DO UPDATE SET reason = excluded.reason, locked_by = excluded.locked_by, locked_at = excluded.locked_at",
        )
        .bind(user)
        .bind(reason)
        .bind(by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let revoked: Vec<String> = sqlx::query(
            "UPDATE grants SET state = 'revoked', ended_at = $2, end_reason = 'locked', ended_by = $3, end_comment = $4 WHERE user_name = $1 AND state IN ('active', 'scheduled') RETURNING id",
        )
        .bind(user)
        .bind(now)
        .bind(by)
        .bind(reason)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()?;
        for g in &revoked {
            super::retired::retire_secrets(&mut tx, g, now).await?;
        }
        // Every sign-in of the user ends with the lock, on every instance
        // (they look tokens up here); an unlock does not revive them.
        sqlx::query(
            "UPDATE signins SET ended_at = $2, end_reason = 'locked' WHERE user_name = $1 AND ended_at IS NULL",
        )
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let cancelled: Vec<String> = sqlx::query(
            "UPDATE requests SET state = 'cancelled', decided_at = $2, decided_by = $3, decision_reason = 'user locked' WHERE requester = $1 AND state = 'pending' RETURNING id",
        )
        .bind(user)
        .bind(now)
        .bind(by)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()?;
        let mut entry = audit.clone();
        entry.detail["grants_revoked"] = serde_json::json!(revoked);
        entry.detail["requests_cancelled"] = serde_json::json!(cancelled);
        self.append(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(LockOutcome {
            revoked_grants: revoked,
            cancelled_requests: cancelled,
        })
    }

    /// Returns false when the user was not locked.
    pub async fn unlock_user(
        &self,
        user: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query("DELETE FROM user_locks WHERE user_name = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        self.append(&mut tx, audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get_lock(&self, user: &str) -> Result<Option<LockRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT user_name, reason, locked_by, locked_at FROM user_locks WHERE user_name = $1",
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(LockRecord {
                user: r.try_get("user_name")?,
                reason: r.try_get("reason")?,
                locked_by: r.try_get("locked_by")?,
                locked_at_ms: r.try_get("locked_at")?,
            })
        })
        .transpose()
    }
}
