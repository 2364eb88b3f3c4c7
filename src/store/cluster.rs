//! The shared state of several instances: heartbeats, the live-session rows
//! each instance owns, and what an instance needs to re-check when a LISTEN
//! notification may have been missed (grants ended, users locked, terminate
//! requests).

use super::{Store, StoreError};
use crate::audit::AuditEntry;
use sqlx::any::AnyRow;
use sqlx::Row;

/// A live session as other instances see it.
#[derive(Debug, Clone)]
pub struct LiveSessionRow {
    pub id: String,
    pub instance: String,
    pub grant_id: String,
    pub user: String,
    pub target: String,
    pub kind: String,
    pub client_addr: String,
    pub granted_at_ms: i64,
    pub started_at_ms: i64,
    pub expires_at_ms: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub last_activity_ms: i64,
}

/// A grant that ended (in the store) and why.
#[derive(Debug, Clone)]
pub struct EndedGrant {
    pub id: String,
    pub reason: String,
    pub by: String,
    pub comment: String,
}

/// A terminate request recorded on a row this instance owns.
#[derive(Debug, Clone)]
pub struct EndRequest {
    pub session: String,
    pub by: String,
    pub comment: String,
}

/// One queued change of this instance's rows, applied in batches.
#[derive(Debug, Clone)]
pub enum RowChange {
    Insert(LiveSessionRow),
    Delete(String),
    /// Every row of one instance (before republishing them all).
    DeleteInstance(String),
    Counters {
        id: String,
        bytes_in: i64,
        bytes_out: i64,
        last_activity_ms: i64,
    },
}

const ROW_COLUMNS: &str = "id, instance, grant_id, user_name, target, kind, client_addr, granted_at, started_at, expires_at, bytes_in, bytes_out, last_activity_at";

fn live_row(r: &AnyRow) -> Result<LiveSessionRow, StoreError> {
    Ok(LiveSessionRow {
        id: r.try_get("id")?,
        instance: r.try_get("instance")?,
        grant_id: r.try_get("grant_id")?,
        user: r.try_get("user_name")?,
        target: r.try_get("target")?,
        kind: r.try_get("kind")?,
        client_addr: r.try_get("client_addr")?,
        granted_at_ms: r.try_get("granted_at")?,
        started_at_ms: r.try_get("started_at")?,
        expires_at_ms: r.try_get("expires_at")?,
        bytes_in: r.try_get("bytes_in")?,
        bytes_out: r.try_get("bytes_out")?,
        last_activity_ms: r.try_get("last_activity_at")?,
    })
}

impl Store {
    /// Registers this instance under a fresh incarnation and drops rows left
    /// by its previous incarnation (their sockets died with that process).
    /// Returns the previous heartbeat, if a row existed.
    pub async fn register_instance(
        &self,
        name: &str,
        incarnation: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let previous: Option<i64> =
            sqlx::query_scalar("SELECT heartbeat_at FROM instances WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO instances (name, incarnation, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO UPDATE SET incarnation = excluded.incarnation, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
        )
        .bind(name)
        .bind(incarnation)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM live_sessions WHERE instance = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// The registered incarnation and last heartbeat under `name`, if any.
    pub async fn instance_heartbeat(
        &self,
        name: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT incarnation, heartbeat_at FROM instances WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row)
    }

    /// Returns false when this incarnation's row is gone (another instance
    /// took it for dead), so the caller re-registers and re-publishes.
    pub async fn heartbeat(
        &self,
        name: &str,
        incarnation: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        let r = sqlx::query(
            "UPDATE instances SET heartbeat_at = $3 WHERE name = $1 AND incarnation = $2",
        )
        .bind(name)
        .bind(incarnation)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes this instance at a clean shutdown.
    pub async fn deregister_instance(
        &self,
        name: &str,
        incarnation: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM instances WHERE name = $1 AND incarnation = $2")
            .bind(name)
            .bind(incarnation)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM live_sessions WHERE instance = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Instances whose heartbeat is at or after `since`, other than `me`.
    pub async fn live_peers(&self, me: &str, since: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM instances WHERE heartbeat_at >= $1 AND name <> $2 ORDER BY name",
        )
        .bind(since)
        .bind(me)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Takes over the rows of one instance that stopped heartbeating before
    /// `cutoff`: the instance row goes first and conditionally, so of two
    /// instances cleaning up at once only one writes the audit events.
    /// Returns the orphaned rows, already deleted, with their audit written.
    pub async fn reap_instance(
        &self,
        dead: &str,
        cutoff: i64,
        now: i64,
        audit_of: impl Fn(&LiveSessionRow) -> AuditEntry,
    ) -> Result<Vec<LiveSessionRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let won = sqlx::query("DELETE FROM instances WHERE name = $1 AND heartbeat_at < $2")
            .bind(dead)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !won {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM live_sessions WHERE instance = $1 ORDER BY started_at"
        ))
        .bind(dead)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(live_row)
        .collect::<Result<Vec<_>, _>>()?;
        sqlx::query("DELETE FROM live_sessions WHERE instance = $1")
            .bind(dead)
            .execute(&mut *tx)
            .await?;
        for r in &rows {
            self.append(&mut tx, &audit_of(r), now).await?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    pub async fn dead_instances(&self, cutoff: i64) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM instances WHERE heartbeat_at < $1")
                .bind(cutoff)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Applies a batch of row changes in one transaction.
    pub async fn apply_row_changes(&self, changes: &[RowChange]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for c in changes {
            match c {
                RowChange::Insert(r) => {
                    sqlx::query(&format!(
                        "INSERT INTO live_sessions ({ROW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (id) DO NOTHING"
                    ))
                    .bind(&r.id)
                    .bind(&r.instance)
                    .bind(&r.grant_id)
                    .bind(&r.user)
                    .bind(&r.target)
                    .bind(&r.kind)
                    .bind(&r.client_addr)
                    .bind(r.granted_at_ms)
                    .bind(r.started_at_ms)
                    .bind(r.expires_at_ms)
                    .bind(r.bytes_in)
                    .bind(r.bytes_out)
                    .bind(r.last_activity_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                RowChange::Delete(id) => {
                    sqlx::query("DELETE FROM live_sessions WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                RowChange::DeleteInstance(name) => {
                    sqlx::query("DELETE FROM live_sessions WHERE instance = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                RowChange::Counters {
                    id,
                    bytes_in,
                    bytes_out,
                    last_activity_ms,
                } => {
                    sqlx::query(
                        "UPDATE live_sessions SET bytes_in = $2, bytes_out = $3, last_activity_at = $4 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(bytes_in)
                    .bind(bytes_out)
                    .bind(last_activity_ms)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Live sessions owned by instances other than `me`.
    pub async fn remote_sessions(&self, me: &str) -> Result<Vec<LiveSessionRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM live_sessions WHERE instance <> $1 ORDER BY started_at, id"
        ))
        .bind(me)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(live_row)
        .collect()
    }

    pub async fn live_session(&self, id: &str) -> Result<Option<LiveSessionRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM live_sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(live_row)
        .transpose()
    }

    /// Leaves a terminate request on the owner's row, for its re-check to
    /// find if the notification is lost.
    pub async fn request_session_end(
        &self,
        id: &str,
        by: &str,
        comment: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query(
            "UPDATE live_sessions SET end_requested_at = $2, end_by = $3, end_comment = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .bind(by)
        .bind(comment)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn end_requests(&self, me: &str) -> Result<Vec<EndRequest>, StoreError> {
        sqlx::query(
            "SELECT id, end_by, end_comment FROM live_sessions WHERE instance = $1 AND end_requested_at IS NOT NULL",
        )
        .bind(me)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(EndRequest {
                session: r.try_get("id")?,
                by: r.try_get::<Option<String>, _>("end_by")?.unwrap_or_default(),
                comment: r
                    .try_get::<Option<String>, _>("end_comment")?
                    .unwrap_or_default(),
            })
        })
        .collect()
    }

    /// Grants that ended at or after `since` (revoked, locked or expired).
    pub async fn grants_ended_since(&self, since: i64) -> Result<Vec<EndedGrant>, StoreError> {
        sqlx::query(
            "SELECT id, state, end_reason, ended_by, end_comment FROM grants WHERE ended_at >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let state: String = r.try_get("state")?;
            Ok(EndedGrant {
                id: r.try_get("id")?,
                reason: r
                    .try_get::<Option<String>, _>("end_reason")?
                    .unwrap_or(state),
                by: r
                    .try_get::<Option<String>, _>("ended_by")?
                    .unwrap_or_default(),
                comment: r
                    .try_get::<Option<String>, _>("end_comment")?
                    .unwrap_or_default(),
            })
        })
        .collect()
    }

    pub async fn locked_users(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        sqlx::query("SELECT user_name, reason, locked_by FROM user_locks")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("user_name")?,
                    r.try_get("reason")?,
                    r.try_get("locked_by")?,
                ))
            })
            .collect()
    }

    /// Sends a PostgreSQL notification; the payload must stay under 8000 bytes.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
