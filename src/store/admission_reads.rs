//! The reads a new connection's admission makes. Each is one query, with
//! the user's lock in it: on the embedded store every query is a hand-off
//! to SQLite's worker thread and back, and a connection used to pay five of
//! them (secret or grants, lock, lock again, then lock and grant at entry),
//! which was most of the setup cost that HAProxy and pgbouncer do not have.

use super::grants::{cols_of, grant_from_row};
use super::{GrantRecord, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A grant with whether its user is locked, read together.
#[derive(Debug, Clone)]
pub struct GrantCheck {
    pub grant: GrantRecord,
    pub user_locked: bool,
}

/// The lock of the grant's user, as a count both SQLite and PostgreSQL
/// return as a 64-bit integer (EXISTS decodes differently in each).
const LOCKED: &str =
    "(SELECT COUNT(*) FROM user_locks l WHERE l.user_name = g.user_name) AS user_locked";

fn check_from_row(row: &AnyRow) -> Result<GrantCheck, StoreError> {
    let locked: i64 = row.try_get("user_locked")?;
    Ok(GrantCheck {
        grant: grant_from_row(row)?,
        user_locked: locked > 0,
    })
}

impl Store {
    /// The grant whose connect secret hashes to `sha256`, if any, with the
    /// stored verifier (the caller compares it in constant time). The
    /// secret may be retired (its grant ended: the caller checks the
    /// grant's state, and says why).
    pub async fn grant_by_secret(
        &self,
        sha256: &[u8; 32],
    ) -> Result<Option<(GrantCheck, [u8; 32])>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {}, s.sha256 AS secret_sha256, {LOCKED} FROM connect_secrets s \
             JOIN grants g ON g.id = s.grant_id WHERE s.sha256 = $1",
            cols_of("g")
        ))
        .bind(hex::encode(sha256))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("secret_sha256")?;
        let stored = hex::decode(&stored)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| StoreError::Corrupt("bad secret verifier".into()))?;
        Ok(Some((check_from_row(&row)?, stored)))
    }

    /// Grant `id` as it stands now, with its user's lock: the re-check a
    /// session makes once it is in the session table.
    pub async fn grant_check(&self, id: &str) -> Result<Option<GrantCheck>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {}, {LOCKED} FROM grants g WHERE g.id = $1",
            cols_of("g")
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(check_from_row).transpose()
    }

    /// Active (or scheduled) grants of `user` on `target`, newest first,
    /// each with the user's lock (SSH identifies the engineer by key, so no
    /// secret is involved).
    pub async fn active_grants_of(
        &self,
        user: &str,
        target: &str,
    ) -> Result<Vec<GrantCheck>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {}, {LOCKED} FROM grants g WHERE g.user_name = $1 AND g.target = $2 \
             AND g.state IN ('active', 'scheduled') ORDER BY g.granted_at DESC",
            cols_of("g")
        ))
        .bind(user)
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(check_from_row).collect()
    }

    /// Active (or scheduled) grants of `user` on `target` with their SCRAM
    /// verifiers, newest first, each with the user's lock: a PostgreSQL
    /// client names user and target, not the grant.
    pub async fn active_grants_with_scram(
        &self,
        user: &str,
        target: &str,
    ) -> Result<Vec<(GrantCheck, String)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {}, s.scram, {LOCKED} FROM grants g JOIN connect_secrets s ON s.grant_id = g.id \
             WHERE g.user_name = $1 AND g.target = $2 AND g.state IN ('active', 'scheduled') \
             AND s.scram <> $3 ORDER BY g.granted_at DESC, s.issued_at DESC",
            cols_of("g")
        ))
        .bind(user)
        .bind(target)
        .bind(super::RETIRED)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((check_from_row(r)?, r.try_get("scram")?)))
            .collect()
    }
}
