//! The SSH front end against a private OpenSSH sshd with the real ssh, scp, sftp and rsync clients.
//!
//! One test binary per peer set, so the expensive fixtures (a PostgreSQL
//! cluster, the compiled helpers) are built and started once.

#[path = "../common/mod.rs"]
mod common;

mod certificate_token;
mod certificates;
mod console_watch;
mod hostile_ssh_after_login;
mod lifecycle_ssh;
mod login_accounting;
mod one_step;
mod promise_ssh;
mod recording_access;
mod recording_crash;
mod recording_disk;
mod recording_ssh;
mod ssh;
mod ssh_hostile;
mod ssh_policy;
