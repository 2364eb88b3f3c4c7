//! The control plane: admin API, CLI, config, store, audit, notifications, console, operations.
//!
//! One test binary per peer set, so the expensive fixtures (a PostgreSQL
//! cluster, the compiled helpers) are built and started once.

#[path = "../common/mod.rs"]
mod common;

mod admin_tls;
mod admission;
mod admission_reads;
mod api;
mod api_hostile;
mod audit_anchor;
mod audit_fields;
mod audit_lying_server;
mod audit_strict;
mod break_glass;
mod cli;
mod cli_text;
mod cli_wait;
mod config_check;
mod config_docs;
mod console;
mod console_a11y;
mod console_break_glass;
mod console_lifecycle;
mod console_requester;
mod deadline;
mod extend;
mod full_disk;
mod fuzz_corpus;
mod keys;
mod lifecycle;
mod metrics;
mod notify;
mod ops;
mod permissions;
mod properties;
mod retired_secrets;
mod schedule;
mod slack;
mod store;
mod store_batch;
mod store_tls;
mod systemd;
