//! The notification outbox: rows queued in the transaction of the change
//! they report, claimed by delivery workers under a lease.
//!
//! Claiming is a read of due ids followed by a conditional UPDATE per id
//! that re-checks the lease, so an idle poll takes no write lock (SQLite)
//! and two instances racing for a row on PostgreSQL cannot both win: the
//! second UPDATE waits for the first, re-evaluates its WHERE on the new row
//! version and matches nothing. Every later change to a claimed row is
//! conditional on the claimant's owner token, so a worker whose lease
//! lapsed cannot undo another worker's progress.

use super::event::Event;
use super::{Store, StoreError};
use sqlx::{AnyConnection, Row};
use std::sync::Arc;

/// Who receives which notification. The daemon implements it over the
/// running config, so a reload changes routing for the next event.
pub trait Routing: Send + Sync {
    /// Urls of the receivers subscribed to `event`.
    fn receivers(&self, event: &str) -> Vec<String>;
    /// This instance's name, written into every body.
    fn instance(&self) -> String;
}

/// A claimed row.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub event_id: String,
    pub event: String,
    pub receiver: String,
    pub body: String,
    /// Including the attempt this claim is for.
    pub attempts: i64,
    pub created_at_ms: i64,
}

/// Inserts one row per receiver inside the caller's transaction. A second
/// copy of the same event for the same receiver is ignored.
pub(super) async fn insert(
    conn: &mut AnyConnection,
    event: &Event,
    instance: &str,
    receivers: &[String],
) -> Result<(), StoreError> {
    if receivers.is_empty() {
        return Ok(());
    }
    let body = event.body(instance);
    for r in receivers {
        sqlx::query(
            "INSERT INTO outbox (id, event_id, event, receiver, body, created_at, next_at, attempts) VALUES ($1, $2, $3, $4, $5, $6, $6, 0) ON CONFLICT (event_id, receiver) DO NOTHING",
        )
        .bind(crate::ids::delivery_id())
        .bind(&event.id)
        .bind(event.name)
        .bind(r)
        .bind(&body)
        .bind(event.at_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Starts queueing notifications for every clone of this store. Only the
    /// first call takes effect: routing is fixed for a process's life (the
    /// routing itself follows config reloads).
    pub fn set_routing(&self, routing: Arc<dyn Routing>) {
        let _ = self.routing.set(routing);
    }

    pub(super) fn routing(&self) -> Option<&Arc<dyn Routing>> {
        self.routing.get()
    }

    /// Queues an event that is not part of a state change (grant.expiring).
    /// Returns how many receivers it was queued for.
    pub async fn enqueue_event(&self, event: &Event) -> Result<usize, StoreError> {
        let Some(routing) = self.routing() else {
            return Ok(0);
        };
        let receivers = routing.receivers(event.name);
        if receivers.is_empty() {
            return Ok(0);
        }
        let _gate = self.write_gate().await;
        let mut conn = self.pool.acquire().await?;
        insert(&mut conn, event, &routing.instance(), &receivers).await?;
        Ok(receivers.len())
    }

    /// Claims up to `limit` rows of `receiver` that are due at `now`, leased
    /// to `owner` until `lease_until`.
    pub async fn claim_outbox(
        &self,
        receiver: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM outbox WHERE receiver = $1 AND next_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) ORDER BY next_at, id LIMIT $3",
        )
        .bind(receiver)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let _gate = self.write_gate().await;
            let row = sqlx::query(
                "UPDATE outbox SET lease_owner = $2, lease_until = $3, attempts = attempts + 1 WHERE id = $1 AND next_at <= $4 AND (lease_until IS NULL OR lease_until <= $4) RETURNING id, event_id, event, receiver, body, attempts, created_at",
            )
            .bind(&id)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(r) = row {
                out.push(OutboxRow {
                    id: r.try_get("id")?,
                    event_id: r.try_get("event_id")?,
                    event: r.try_get("event")?,
                    receiver: r.try_get("receiver")?,
                    body: r.try_get("body")?,
                    attempts: r.try_get("attempts")?,
                    created_at_ms: r.try_get("created_at")?,
                });
            }
        }
        Ok(out)
    }

    /// Removes a row this owner holds (delivered, or given up). False when
    /// the lease was lost, i.e. another worker owns the row now.
    pub async fn finish_outbox(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        let res = sqlx::query("DELETE FROM outbox WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Releases a row this owner holds for another attempt at `next_at`.
    pub async fn retry_outbox(
        &self,
        id: &str,
        owner: &str,
        next_at: i64,
        error: &str,
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "UPDATE outbox SET next_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(next_at)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Hands back every row `owner` still holds (at shutdown), so another
    /// instance or the next start retries them without waiting for leases
    /// to lapse.
    pub async fn release_outbox(&self, owner: &str) -> Result<u64, StoreError> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }

    /// Receivers that have rows created before `before`, with their counts.
    pub async fn outbox_receivers_before(
        &self,
        before: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT receiver, COUNT(*) AS n FROM outbox WHERE created_at < $1 GROUP BY receiver",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("receiver")?, r.try_get("n")?)))
            .collect()
    }

    /// Deletes `receiver`'s rows created before `before` that no worker
    /// holds at `now`.
    pub async fn drop_outbox_before(
        &self,
        receiver: &str,
        before: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "DELETE FROM outbox WHERE receiver = $1 AND created_at < $2 AND (lease_until IS NULL OR lease_until <= $3)",
        )
        .bind(receiver)
        .bind(before)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }

    /// Rows waiting, for tests and operators.
    pub async fn outbox_len(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?)
    }
}
