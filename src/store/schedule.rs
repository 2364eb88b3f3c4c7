//! Scheduled grants: listing them for their start timers, and the start
//! itself (`scheduled` -> `active`), one winner per grant.

use super::grants::{grant_from_row, load};
use super::{GrantRecord, Store, StoreError};
use crate::audit::AuditEntry;

impl Store {
    /// Every scheduled grant, for rebuilding start timers at start.
    pub async fn scheduled_grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM grants WHERE state = 'scheduled'",
            super::grants::COLS
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// Makes a scheduled grant active. Ok(None) when it is no longer
    /// scheduled (revoked before its start, or started by another instance).
    pub async fn activate_grant(
        &self,
        id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<Option<GrantRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE grants SET state = 'active' WHERE id = $1 AND state = 'scheduled' AND starts_at <= $2",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Ok(None);
        }
        self.append(&mut tx, audit, now).await?;
        let g = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(g)
    }
}
