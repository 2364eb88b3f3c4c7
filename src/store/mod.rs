//! The store: requests, approvals, grants, connect-secret verifiers, user
//! locks and the audit chain, in SQLite (embedded, default) or PostgreSQL
//! (shared by several instances), behind one type.
//!
//! Both backends go through sqlx's `Any` driver with portable SQL, so one set
//! of queries and one test suite cover both. Every state change is a single
//! transaction that (1) starts with a conditional UPDATE that both checks the
//! current state and takes the write lock, and (2) appends its audit event in
//! the same transaction, so a change and its audit record land together or
//! not at all.

mod admission_reads;
mod audit_log;
mod cluster;
pub mod event;
mod exclusive;
mod extensions;
mod gate;
mod grants;
mod locks;
mod migrate;
pub mod models;
mod notify_hook;
mod outbox;
mod request_rows;
mod requests;
mod retired;
mod review;
mod schedule;
mod signins;

pub use admission_reads::GrantCheck;
pub use audit_log::AUDIT_BATCH;
pub use cluster::{EndRequest, EndedGrant, LiveSessionRow, RowChange};
pub use exclusive::{lock_embedded_store, EmbeddedStoreLock};
pub use grants::GrantEnd;
pub use locks::LockOutcome;
pub use models::*;
pub use outbox::{OutboxRow, Routing};
pub use retired::{RETIRED, RETIRED_FOR_MS};
pub use signins::{SignedIn, SigninCode, SigninConfirm, SigninFlow, SigninRecord};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store's failures, typed so callers decide on the variant, never on
/// message text. [`StoreError::is_unavailable`] groups the ones that mean
/// "jitgate cannot write now; retry later" (its own fault, not the caller's).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    /// The row is in the wrong state for this change (already approved,
    /// already ended, ...).
    #[error("{0}")]
    Conflict(String),
    /// The store cannot be reached or is busy: pool timeout, I/O, TLS, a
    /// lock held too long.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// SQLITE_FULL or PostgreSQL disk_full: nothing was written.
    #[error("store unavailable: the store's disk is full ({0}); nothing was written")]
    DiskFull(String),
    /// A unique, foreign-key, not-null or check constraint refused the write.
    #[error("store constraint violated: {0}")]
    Constraint(String),
    /// A stored value cannot be read back (an unknown state, a malformed
    /// secret verifier).
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    #[error("store error: {0}")]
    Database(String),
}

impl StoreError {
    /// The store cannot take this now (down, busy or out of disk): jitgate's
    /// own failure, worth a retry, and never a reason to grant anything.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::DiskFull(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        // Any failure may have left a transaction open on its connection:
        // check the connections released for a while (see `sqlite_idle`).
        check_released_connections();
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(d)
                if d.message().contains("locked") || d.message().contains("busy") =>
            {
                StoreError::Unavailable(d.message().to_string())
            }
            // SQLITE_FULL, PostgreSQL disk_full: nothing was written; say so
            // plainly, as a store that cannot take writes, not an internal error.
            sqlx::Error::Database(d)
                if d.code().as_deref() == Some("13") || d.code().as_deref() == Some("53100") =>
            {
                StoreError::DiskFull(d.message().to_string())
            }
            sqlx::Error::Database(d)
                if matches!(
                    d.kind(),
                    ErrorKind::UniqueViolation
                        | ErrorKind::ForeignKeyViolation
                        | ErrorKind::NotNullViolation
                        | ErrorKind::CheckViolation
                ) =>
            {
                StoreError::Constraint(d.message().to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Who receives which notification; unset (tests, tools) means no
    /// notification is queued. Shared by every clone.
    routing: Arc<OnceLock<Arc<dyn Routing>>>,
    /// The audit checkpoint signer; unset (tests, tools) means no
    /// checkpoints are written. Shared by every clone.
    anchor: Arc<OnceLock<Arc<crate::audit_anchor::Anchor>>>,
    /// Queues this process's writers in order on SQLite (gate.rs).
    gate: gate::Gate,
}

impl Store {
    /// Opens the store and applies migrations. For SQLite the file is created
    /// with mode 0600; its directory is expected to be 0700 (see daemon setup).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite(url)?,
            Backend::Postgres => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            // A ping before each use finds a network connection that died
            // while idle. An embedded file has none to lose, and the ping
            // is one more hand-off to SQLite's worker thread per query (a
            // third of a tunnel connection's store cost); a failing disk
            // fails the query itself, closed.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .after_release(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        return Ok(sqlite_idle(conn).await);
                    }
                    Ok(true)
                })
            })
            .connect(&url)
            .await?;
        migrate::run(&pool, backend).await?;
        if backend == Backend::Sqlite {
            restrict_sqlite_files(&url);
        }
        Ok(Store {
            pool,
            backend,
            routing: Default::default(),
            anchor: Default::default(),
            gate: gate::for_backend(backend),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Cheap round trip used by /readyz and the fail-closed checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Direct pool access for tests that tamper with rows (audit tamper checks).
    #[doc(hidden)]
    pub fn raw_pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Until when (Unix ms) released SQLite connections are checked for a
/// transaction left open; 0 when no store error was seen lately.
static CHECK_RELEASED_UNTIL: AtomicI64 = AtomicI64::new(0);

/// How long after a store error released connections are checked: every
/// connection in use at the error is released well within it.
const CHECK_RELEASED_FOR_MS: i64 = 60_000;

fn check_released_connections() {
    CHECK_RELEASED_UNTIL.store(
        crate::clock::now_ms() + CHECK_RELEASED_FOR_MS,
        Ordering::Relaxed,
    );
}

/// Whether a SQLite connection may go back to the pool: only when it holds
/// no transaction. When a write fails with "disk full", SQLite may keep the
/// transaction open while the rollback on drop fails too; reused, such a
/// connection would hold the write lock (every other writer: "database is
/// locked") and turn later transactions into savepoints that never commit,
/// so writes would be acknowledged and then lost. Found by the campaign's
/// full-disk case. A `BEGIN` fails inside a transaction; the pool then
/// closes the connection, which rolls it back.
///
/// The check costs two statements, each a round trip to the connection's
/// worker thread, on every release: more than most reads themselves (a
/// profile of `pgbench -C` through the proxy had a quarter of the daemon's
/// time in those hand-offs). A transaction is left open only after a
/// failure, and every failure passes through `StoreError::from`, so the
/// check runs only for a minute after one.
async fn sqlite_idle(conn: &mut sqlx::AnyConnection) -> bool {
    if crate::clock::now_ms() > CHECK_RELEASED_UNTIL.load(Ordering::Relaxed) {
        return true;
    }
    if conn.execute("BEGIN").await.is_err() {
        tracing::warn!("discarding a store connection left inside a failed transaction");
        return false;
    }
    conn.execute("ROLLBACK").await.is_ok()
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path)
    }
}

fn prepare_sqlite(url: &str) -> Result<String, StoreError> {
    if let Some(path) = sqlite_path(url) {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite file {path}: {e}")))?;
    }
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// WAL and SHM files are created by SQLite with the process umask; tighten them.
fn restrict_sqlite_files(url: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(path) = sqlite_path(url) {
        for suffix in ["", "-wal", "-shm"] {
            let f = format!("{path}{suffix}");
            let _ = std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600));
        }
    }
}
