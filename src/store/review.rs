//! Break-glass review: the one verdict an approver records on a grant taken
//! without approval, and the count of grants still waiting for one.

use super::grants::load;
use super::{GrantRecord, Store, StoreError};
use crate::audit::AuditEntry;

impl Store {
    /// Records `verdict` on a break-glass grant still pending review. A
    /// grant that is not break-glass, or already reviewed, is a conflict.
    pub async fn review_grant(
        &self,
        id: &str,
        verdict: &str,
        by: &str,
        comment: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<GrantRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE grants SET review = $2, reviewed_by = $3, review_comment = $4, reviewed_at = $5 WHERE id = $1 AND review = 'pending'",
        )
        .bind(id)
        .bind(verdict)
        .bind(by)
        .bind(comment)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(match load(&mut tx, id).await? {
                Some(g) => match g.review {
                    None => StoreError::Conflict(format!(
                        "grant {id} is not a break-glass grant; there is nothing to review"
                    )),
                    Some(v) => StoreError::Conflict(format!(
                        "grant {id} was already reviewed ({v}) by {}",
                        g.reviewed_by.unwrap_or_default()
                    )),
                },
                None => StoreError::NotFound(format!("grant {id}")),
            });
        }
        self.append(&mut tx, audit, now).await?;
        let g = load(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("grant {id}")))?;
        tx.commit().await?;
        Ok(g)
    }

    /// Break-glass grants waiting for a verdict, whatever their state.
    pub async fn count_unreviewed(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM grants WHERE review = 'pending'")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
