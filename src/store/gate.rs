//! The SQLite write gate: one FIFO queue for every writer in the process.
//!
//! SQLite has one write lock per database, and a writer that finds it taken
//! does not queue: its busy handler (`busy_timeout`) sleeps with growing
//! back-off and tries again. Behind a busy writer (the audit writer's
//! batches), a revoke's store write could then sleep far longer than the
//! transactions in front of it took. So on SQLite every write transaction
//! and every standalone write statement first takes the store's one async
//! lock (tokio's `Mutex` is fair: waiters are served in arrival order), and
//! a writer waits for at most the transactions queued before it. Writers in
//! this process never meet the busy handler among themselves; it remains
//! for other processes (the CLI's embedded-store tools).
//!
//! PostgreSQL queues lock waiters itself and allows concurrent writers to
//! different rows, so there the gate is absent and costs nothing.

use super::{Backend, Store, StoreError};
use sqlx::{Any, AnyConnection, Transaction};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The gate's lock: `None` on PostgreSQL.
pub(super) type Gate = Option<Arc<Mutex<()>>>;

pub(super) fn for_backend(backend: Backend) -> Gate {
    match backend {
        Backend::Sqlite => Some(Arc::new(Mutex::new(()))),
        Backend::Postgres => None,
    }
}

/// A held place at the gate; dropping it lets the next writer in.
pub(super) struct GateGuard(#[allow(dead_code)] Option<OwnedMutexGuard<()>>);

/// A write transaction that holds the gate until it commits or is dropped.
/// Derefs to the connection, as sqlx's `Transaction` does, so call sites
/// read as before (`&mut *tx` for a query, `&mut tx` for a helper).
///
/// Dropped uncommitted (an error path), the SQLite driver hands the
/// ROLLBACK to the connection's worker thread at once, so the write lock is
/// free again about as soon as the next writer passes the gate.
pub(super) struct WriteTx {
    // Declared first so it is dropped (rolled back) before the gate opens.
    tx: Transaction<'static, Any>,
    _gate: GateGuard,
}

impl WriteTx {
    pub(super) async fn commit(self) -> Result<(), StoreError> {
        // The gate is released only after COMMIT returned, when SQLite's
        // write lock is free for the next writer.
        self.tx.commit().await?;
        Ok(())
    }

    /// Rolls back before the gate opens, so the next writer finds SQLite's
    /// write lock free.
    pub(super) async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl Store {
    /// Waits for this process's writers in front (SQLite), then begins a
    /// transaction. Every store write transaction starts here.
    pub(super) async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        // Gate first, then the connection: a queued writer holds no pooled
        // connection while it waits.
        let gate = self.write_gate().await;
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _gate: gate })
    }

    /// Waits for this process's writers in front (SQLite); hold the guard
    /// while a standalone write statement runs on the pool.
    pub(super) async fn write_gate(&self) -> GateGuard {
        match &self.gate {
            Some(g) => GateGuard(Some(g.clone().lock_owned().await)),
            None => GateGuard(None),
        }
    }
}
