//! The accept loop every front end shares: at most `MAX_UNAUTHENTICATED`
//! connections between accept and authentication per listener, and at most
//! `MAX_UNAUTHENTICATED_PER_SOURCE` of those from one source (see
//! `sources`), so one client flooding the listener with idle connections
//! cannot starve everyone else. A connection over its source's cap is
//! closed at once, before any byte is read, and counted as a
//! `protocol_error` rejection; the refusals are logged at debug level at
//! most once a second per listener, since a flood must not become a flood
//! of log lines. Accept errors (e.g. out of file descriptors) are logged at
//! debug level with a short pause instead of a spin; shutdown stops cleanly.
//!
//! The handler still receives a plain `OwnedSemaphorePermit` and drops it
//! once the engineer is admitted, so live sessions do not count. That permit
//! comes from a one-permit semaphore of its own; a watcher in the same task
//! waits for it to come back and only then releases the listener-wide and
//! per-source slots. Front ends thus hold one value whatever the limits
//! behind it are.
//!
//! Each connection runs in one `session` span (kind, peer); admission into
//! the session table records `session_id`, `user` and `target` into it, so
//! every line logged for the connection from then on names the session.

use super::sources::{Slot, Sources, MAX_UNAUTHENTICATED_PER_SOURCE};
use prometheus::IntCounter;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::Instrument;

/// Connections still in TLS, handshake or authentication; beyond this new
/// ones wait in the listen backlog.
pub const MAX_UNAUTHENTICATED: usize = 1024;

/// At most one debug line per listener per this interval about refusals.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// What an unauthenticated connection holds behind the handler's permit.
struct Unauthenticated {
    _listener: OwnedSemaphorePermit,
    _source: Slot,
}

/// `serve_counted` without a counter for refusals.
pub async fn serve<F, Fut>(
    kind: &'static str,
    listener: TcpListener,
    shutdown: CancellationToken,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    serve_counted(kind, listener, shutdown, None, handle).await
}

/// Accepts until `shutdown`; `refused` counts connections closed for
/// being over their source's cap.
pub async fn serve_counted<F, Fut>(
    kind: &'static str,
    listener: TcpListener,
    shutdown: CancellationToken,
    refused: Option<IntCounter>,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let unauth = Arc::new(Semaphore::new(MAX_UNAUTHENTICATED));
    let sources = Sources::new(MAX_UNAUTHENTICATED_PER_SOURCE);
    let mut refusals = RefusalLog::default();
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
        let Some(slot) = sources.try_take(peer.ip()) else {
            drop(stream);
            if let Some(c) = &refused {
                c.inc();
            }
            refusals.note(kind, peer);
            continue;
        };
        let held = Unauthenticated {
            _listener: permit,
            _source: slot,
        };
        let handed = Arc::new(Semaphore::new(1));
        let Ok(handler_permit) = handed.clone().try_acquire_owned() else {
            continue;
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
        let release = async move {
            // Resolves once the handler has dropped its permit.
            let _ = handed.acquire().await;
            drop(held);
        };
        let connection = handle(stream, peer, handler_permit);
        tokio::spawn(
            async move {
                tokio::join!(connection, release);
            }
            .instrument(span),
        );
    }
}

/// Debug lines about over-cap refusals, at most one per interval, carrying
/// how many were refused since the last one.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    fn note(&mut self, kind: &'static str, peer: SocketAddr) {
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        tracing::debug!(
            kind,
            %peer,
            refused = self.unlogged,
            cap = MAX_UNAUTHENTICATED_PER_SOURCE,
            "source over its cap of unauthenticated connections; closed"
        );
        self.last = Some(now);
        self.unlogged = 0;
    }
}
