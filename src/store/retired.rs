//! Connect secrets of ended grants, kept a while as hashes only.
//!
//! When a grant ends its secrets stop working, but a client presenting one
//! (`jitgate connect` opening a new local connection after a revoke) should
//! learn why, rather than read "the connect secret is not valid". So an
//! ending retires the grant's secrets instead of deleting them: the row
//! keeps its SHA-256 and grant id and loses its SCRAM verifier (replaced by
//! [`RETIRED`], which no verifier parser accepts). Admission finds the row
//! by hash, sees the grant ended, and answers with its end reason (the
//! grant row holds it), for [`RETIRED_FOR`] after the end.
//!
//! Invariants:
//! - A retired secret never authenticates: the grant it names is over
//!   (admission checks the grant's state, as for any secret), and its SCRAM
//!   column verifies nothing; PostgreSQL's candidates come from active
//!   grants only.
//! - The table stays bounded: each retirement also deletes the retired
//!   rows of grants that ended more than `RETIRED_FOR` ago, and admission
//!   treats an older one as unknown, so "bounded time" holds even between
//!   prunes.
//! - A rotation deletes the replaced secrets outright: their grant lives,
//!   so "not valid" is the true answer for them.

use super::StoreError;
use sqlx::AnyConnection;

/// The SCRAM column of a retired secret.
pub const RETIRED: &str = "retired";

/// How long after its grant's end a retired secret is still recognised.
pub const RETIRED_FOR_MS: i64 = 24 * 3600 * 1000;

/// Retires the secrets of `grant_id`, ended at `now`, and prunes those
/// retired more than `RETIRED_FOR_MS` before it. Runs inside the ending's
/// transaction.
pub(super) async fn retire_secrets(
    conn: &mut AnyConnection,
    grant_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE connect_secrets SET scram = $2 WHERE grant_id = $1")
        .bind(grant_id)
        .bind(RETIRED)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DELETE FROM connect_secrets WHERE scram = $1 AND grant_id IN \
         (SELECT id FROM grants WHERE ended_at IS NOT NULL AND ended_at < $2)",
    )
    .bind(RETIRED)
    .bind(now - RETIRED_FOR_MS)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
