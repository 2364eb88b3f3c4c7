//! The PostgreSQL front end against a private PostgreSQL cluster (one per
//! run of this binary, a database and role per test) with psql,
//! tokio-postgres, sqlx, psycopg and pgbench.
//!
//! One test binary per peer set, so the expensive fixtures (a PostgreSQL
//! cluster, the compiled helpers) are built and started once.

#[path = "../common/mod.rs"]
mod common;

mod console_watch_pg;
mod hostile_after_login;
mod lifecycle_pg;
mod limits;
mod one_step_psql;
mod pg;
mod pg_admission;
mod pg_clients;
mod pg_hostile;
mod promise_pg;
mod recording_pg;
mod recording_pg_cursors;
mod recording_pg_names;
mod secrets;
mod upstream_tls;
mod weak_crypto;
