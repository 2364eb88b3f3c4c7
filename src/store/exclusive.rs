//! One daemon per embedded store.
//!
//! SQLite is a file, not a server: two daemons on one file would each keep
//! their own session table, so a revoke through one would miss the sessions
//! of the other (a zombie session). The daemon therefore holds an exclusive
//! advisory lock on a companion file (`<db>.lock`) for its whole life, and a
//! second daemon is refused at start, named by the holder's pid.
//!
//! The pid goes into a companion file (`<db>.lock`), which is also locked.
//! The database file itself is locked too (flock, which Linux keeps apart
//! from the POSIX locks SQLite uses), so a second path to the same file, a
//! hard link, is refused as well. Its descriptor is held for the daemon's
//! life and never closed early: closing any descriptor of a SQLite database
//! drops the process's POSIX locks on it.

use super::{sqlite_path, StoreError};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;

/// Held for the daemon's life; the kernel releases the lock when the
/// process exits, however it exits.
#[derive(Debug)]
pub struct EmbeddedStoreLock {
    _file: File,
    _db: File,
}

/// Takes the lock for a SQLite store URL; `None` for other stores (several
/// instances sharing PostgreSQL is the supported way to run more than one).
pub fn lock_embedded_store(url: &str) -> Result<Option<EmbeddedStoreLock>, StoreError> {
    let Some(db) = url
        .starts_with("sqlite:")
        .then(|| sqlite_path(url))
        .flatten()
    else {
        return Ok(None);
    };
    let path = format!("{db}.lock");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open the store lock {path}: {e}")))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.chars().all(|c| c.is_ascii_digit()) && !holder.is_empty() {
                format!("another jitgate daemon (pid {holder})")
            } else {
                "another jitgate daemon".to_string()
            };
            return Err(StoreError::Conflict(format!(
                "{who} is already serving the SQLite store {db} (lock {path}); an embedded store serves exactly one daemon: stop the other one, or give this one its own data_dir and store, or share a PostgreSQL store between instances"
            )));
        }
        Err(TryLockError::Error(e)) => {
            return Err(StoreError::Unavailable(format!(
                "cannot lock the store {path}: {e}"
            )))
        }
    }
    let db_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(db)
        .map_err(|e| StoreError::Unavailable(format!("cannot open the SQLite file {db}: {e}")))?;
    match db_file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(StoreError::Conflict(format!(
                "another jitgate daemon is already serving the SQLite file {db} under another path (a hard link); an embedded store serves exactly one daemon: stop the other one, or share a PostgreSQL store between instances"
            )))
        }
        Err(TryLockError::Error(e)) => {
            return Err(StoreError::Unavailable(format!("cannot lock the store {db}: {e}")))
        }
    }
    let pid = std::process::id().to_string();
    let written = file
        .set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(pid.as_bytes()))
        .and_then(|_| file.flush());
    if let Err(e) = written {
        // The lock is what matters; the pid is only for the message.
        tracing::warn!(error = %e, "cannot write the pid into {path}");
    }
    Ok(Some(EmbeddedStoreLock {
        _file: file,
        _db: db_file,
    }))
}
