//! The admin HTTP API and the web console: hyper HTTP/1.1 with
//! header-read and request timeouts, a 64 KiB body limit and a cap on
//! concurrent connections, so hostile clients get an error or a timeout.

pub mod auth;
pub mod console;
pub mod error;
mod handlers;
pub use handlers::bodies;
pub mod http;
pub mod recordings;
mod router;
mod signin;
mod signin_page;
pub mod views;
pub use handlers::system::Endpoints;

use crate::grants::Grants;
use crate::reload::Reloader;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub struct AdminState {
    pub grants: Arc<Grants>,
    /// Set once every listener is bound; /readyz also needs the store.
    pub listeners_up: AtomicBool,
    /// How to reach and verify this proxy; set once the listeners are bound.
    pub endpoints: OnceLock<Endpoints>,
    pub reloader: OnceLock<Arc<Reloader>>,
    /// The SSH user CA; set when the SSH listener starts (none without it).
    pub ssh_ca: OnceLock<Arc<crate::ssh_ca::UserCa>>,
    /// Sign-in through the IdP and the `jgs_` tokens it issues.
    pub identity: Arc<crate::identity::flow::Identity>,
}

pub const MAX_CONNECTIONS: usize = 2048;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts until `shutdown`; each connection holds a permit, so at most
/// MAX_CONNECTIONS are served at once and further clients wait in the backlog.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "admin accept failed");
                    // EMFILE and friends: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(stream, peer, state, shutdown).await,
                // The TLS handshake gets the same bound as the headers.
                Some(tls) => match tokio::time::timeout(HEADER_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => connection(stream, peer, state, shutdown).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "admin TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "admin TLS handshake timed out"),
                },
            }
        });
    }
}

async fn connection<I>(
    io: I,
    peer: std::net::SocketAddr,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| router::handle(state.clone(), peer, req));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}
