//! Embedded, forward-only migrations shared by both backends.
//!
//! sqlx's `migrate!` macro would pull the macro crates into the build for one
//! loop; the schema is portable SQL, so a small runner does the job. On
//! PostgreSQL an advisory lock lets several instances start at once.

use super::{Backend, StoreError};
use sqlx::AnyPool;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (
        2,
        "secret_lookup",
        include_str!("migrations/0002_secret_lookup.sql"),
    ),
    (3, "outbox", include_str!("migrations/0003_outbox.sql")),
    (4, "cluster", include_str!("migrations/0004_cluster.sql")),
    (
        5,
        "many_secrets",
        include_str!("migrations/0005_many_secrets.sql"),
    ),
    (
        6,
        "audit_checkpoints",
        include_str!("migrations/0006_audit_checkpoints.sql"),
    ),
    (7, "signins", include_str!("migrations/0007_signins.sql")),
    (
        8,
        "extensions",
        include_str!("migrations/0008_extensions.sql"),
    ),
    (
        9,
        "scheduled",
        include_str!("migrations/0009_scheduled.sql"),
    ),
    (
        10,
        "break_glass",
        include_str!("migrations/0010_break_glass.sql"),
    ),
    (
        11,
        "signin_browser_binding",
        include_str!("migrations/0011_signin_browser_binding.sql"),
    ),
    (
        12,
        "audit_batches",
        include_str!("migrations/0012_audit_batches.sql"),
    ),
];

pub async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    refuse_newer_schema(pool).await?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = pool.begin().await?;
        match backend {
            Backend::Postgres => {
                sqlx::query("SELECT pg_advisory_xact_lock(7304772)")
                    .execute(&mut *tx)
                    .await?;
            }
            Backend::Sqlite => {
                // Take the write lock first (see the note in 0001_init.sql).
                sqlx::query("UPDATE schema_migrations SET name = name WHERE version = -1")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
        if applied.is_some() {
            tx.rollback().await?;
            continue;
        }
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(*version)
        .bind(*name)
        .bind(crate::clock::now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied store migration");
    }
    Ok(())
}

/// Migrations only go forward, so a store already migrated by a newer
/// release may hold data this binary misreads: refuse to run on it rather
/// than guess (a downgrade is done by restoring the pre-upgrade backup).
async fn refuse_newer_schema(pool: &AnyPool) -> Result<(), StoreError> {
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(pool)
        .await?;
    match found {
        Some(v) if v > known => Err(StoreError::Conflict(format!(
            "the store's schema is at version {v}, but this jitgate knows only up to {known}: \
             a newer release migrated it; run that release, or restore the backup taken before \
             the upgrade (see docs/operations.md)"
        ))),
        _ => Ok(()),
    }
}
