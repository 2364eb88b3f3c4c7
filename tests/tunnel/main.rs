//! The TLS tunnel front end and `jitgate connect`.
//!
//! One test binary per peer set, so the expensive fixtures (a PostgreSQL
//! cluster, the compiled helpers) are built and started once.

#[path = "../common/mod.rs"]
mod common;

mod ended_secret;
mod lifecycle_tcp;
mod promise_tcp;
mod scheduled_revoke;
mod secret_prefix;
mod tcp;
mod tcp_hostile;
