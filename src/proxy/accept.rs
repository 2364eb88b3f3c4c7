//! The accept loop every front end shares: at most `MAX_UNAUTHENTICATED`
//! connections between accept and authentication per listener (the handler
//! drops its permit once the engineer is admitted, so live sessions do not
//! count), accept errors (e.g. out of file descriptors) at debug level with
//! a short pause instead of a spin, and a clean stop on shutdown.
//!
//! Each connection runs in one `session` span (kind, peer); admission into
//! the session table records `session_id`, `user` and `target` into it, so
//! every line logged for the connection from then on names the session.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::Instrument;

/// Connections still in TLS, handshake or authentication; beyond this new
/// ones wait in the listen backlog.
pub const MAX_UNAUTHENTICATED: usize = 1024;

pub async fn serve<F, Fut>(
    kind: &'static str,
    listener: TcpListener,
    shutdown: CancellationToken,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let unauth = Arc::new(Semaphore::new(MAX_UNAUTHENTICATED));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = unauth.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(kind, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let span = tracing::info_span!(
            "session",
            kind,
            %peer,
            session_id = Empty,
            user = Empty,
            target = Empty
        );
        tokio::spawn(handle(stream, peer, permit).instrument(span));
    }
}
