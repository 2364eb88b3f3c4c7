//! The SSH listener: `ssh -p 2222 TARGET@proxy`. Accepts connections under
//! a limit of unauthenticated ones and runs each in its own task (`conn`),
//! which owns everything about it until both sockets are closed.

use super::conn;
use super::control;
use russh::server;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use control::SshFrontEnd;

/// From accept to authenticated.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(30);

pub fn server_config(host_key: russh::keys::PrivateKey) -> server::Config {
    server::Config {
        keys: vec![host_key],
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
        // The grant bounds a session, not russh's 600 s idle default; dead
        // clients are found by keepalives.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        auth_rejection_time: Duration::from_secs(1),
        // OpenSSH's first "none" probe must not cost a second.
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        nodelay: true,
        preferred: super::keys::modern_algorithms(true),
        ..Default::default()
    }
}

pub async fn serve(listener: TcpListener, fe: Arc<SshFrontEnd>, shutdown: CancellationToken) {
    let refused = fe.rejected_counter("protocol_error");
    crate::proxy::accept::serve(
        "ssh",
        listener,
        AUTH_TIMEOUT,
        shutdown,
        Some(refused),
        move |stream, peer, permit| conn::run(fe.clone(), stream, peer, permit, AUTH_TIMEOUT),
    )
    .await
}
