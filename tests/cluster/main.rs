//! Several instances sharing one PostgreSQL store.
//!
//! One test binary per peer set, so the expensive fixtures (a PostgreSQL
//! cluster, the compiled helpers) are built and started once.

#[path = "../common/mod.rs"]
mod common;

mod cluster;
mod extend_peer;
mod promise_peer;
