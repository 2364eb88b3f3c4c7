//! The accept loop every front end shares: at most `MAX_UNAUTHENTICATED`
//! connections between accept and authentication per listener, and at most
//! `MAX_UNAUTHENTICATED_PER_SOURCE` of those from one source (see
//! `sources`), so one client flooding the listener with idle connections
//! cannot starve everyone else. Further connections from a source at its
//! cap wait, unread, for one of its slots, without taking any of the
//! listener-wide budget; past the waiting bounds a connection is closed at
//! once, before any byte is read, and counted as a `protocol_error`
//! rejection. Those refusals are logged at debug level at most once a
//! second per listener, since a flood must not become a flood of log lines.
//! Every connection's handshake deadline runs from accept: one that waited
//! for a slot has only what is left of it, so a flood of silent
//! connections is closed within the listener's handshake timeout whatever
//! their place in the queue.
//! Accept errors (e.g. out of file descriptors) are logged at debug level
//! with a short pause instead of a spin; shutdown stops cleanly.
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

use super::sources::{
    Member, Sources, MAX_UNAUTHENTICATED_PER_SOURCE, MAX_WAITING, MAX_WAITING_PER_SOURCE,
};
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

/// How long past its handshake deadline a connection that got a slot at
/// once may run before the accept loop drops it: its handler's own timer,
/// started at the same instant, ends it first and says why where the
/// protocol can.
const BACKSTOP_GRACE: Duration = Duration::from_secs(1);

/// At most one debug line per listener per this interval about refusals.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// What an unauthenticated connection holds behind the handler's permit.
/// Fields drop in order: the slot before the membership it belongs to.
struct Unauthenticated {
    _listener: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
    _member: Member,
}

/// Accepts until `shutdown`; `refused` counts connections closed for
/// being past the waiting bounds or past their handshake deadline.
///
/// `handle` must do nothing before its future is first polled (an `async
/// fn` does nothing): a connection waiting for a slot is not polled.
pub async fn serve<F, Fut>(
    kind: &'static str,
    listener: TcpListener,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
    refused: Option<IntCounter>,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let unauth = Arc::new(Semaphore::new(MAX_UNAUTHENTICATED));
    let sources = Sources::new(
        MAX_UNAUTHENTICATED_PER_SOURCE,
        MAX_WAITING_PER_SOURCE,
        MAX_WAITING,
    );
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
        let Some(member) = sources.join(peer.ip()) else {
            drop(stream);
            if let Some(c) = &refused {
                c.inc();
            }
            refusals.note(kind, peer);
            continue;
        };
        let span = tracing::info_span!(
            "session",
            kind,
            %peer,
            session_id = Empty,
            user = Empty,
            target = Empty
        );
        let _ = stream.set_nodelay(true);
        let handed = Arc::new(Semaphore::new(1));
        let Ok(handler_permit) = handed.clone().try_acquire_owned() else {
            continue;
        };
        // Not polled (so nothing read) until the slots below are held.
        let connection = handle(stream, peer, handler_permit);
        let accepted = tokio::time::Instant::now();
        let (slots, deadline) = match member.try_slot() {
            Some(slot) => (
                Slots::Now(Unauthenticated {
                    _listener: permit,
                    _slot: slot,
                    _member: member,
                }),
                // The handler's own timer (started now) ends it; this is
                // only the backstop.
                accepted + handshake_timeout + BACKSTOP_GRACE,
            ),
            None => {
                // Waiting takes none of the listener-wide budget.
                drop(permit);
                (
                    Slots::Wait(member, unauth.clone(), shutdown.clone()),
                    accepted + handshake_timeout,
                )
            }
        };
        let timed_out = refused.clone();
        tokio::spawn(
            async move {
                // The handshake deadline runs from accept, not from the slot:
                // a silent connection is closed in time wherever it queued.
                let held = match tokio::time::timeout_at(deadline, slots.get()).await {
                    Ok(Some(held)) => held,
                    // Shutdown.
                    Ok(None) => return,
                    Err(_) => {
                        count(&timed_out);
                        tracing::debug!(
                            "handshake deadline from accept passed while queued; closed"
                        );
                        return;
                    }
                };
                tokio::pin!(connection);
                tokio::select! {
                    _ = &mut connection => return,
                    // Resolves once the handler has dropped its permit.
                    _ = handed.acquire() => drop(held),
                    _ = tokio::time::sleep_until(deadline) => {
                        count(&timed_out);
                        tracing::debug!("handshake deadline from accept passed; closed");
                        return;
                    }
                }
                connection.await;
            }
            .instrument(span),
        );
    }
}

/// A connection the accept loop closes itself is a `protocol_error`
/// rejection, as the front end's own handshake timeout counts it.
fn count(c: &Option<IntCounter>) {
    if let Some(c) = c {
        c.inc();
    }
}

enum Slots {
    Now(Unauthenticated),
    /// A source slot, then a listener-wide one; None on shutdown.
    Wait(Member, Arc<Semaphore>, CancellationToken),
}

impl Slots {
    async fn get(self) -> Option<Unauthenticated> {
        match self {
            Slots::Now(held) => Some(held),
            Slots::Wait(member, unauth, shutdown) => {
                let slot = tokio::select! {
                    _ = shutdown.cancelled() => None,
                    s = member.slot() => s,
                }?;
                let listener = tokio::select! {
                    _ = shutdown.cancelled() => None,
                    p = unauth.acquire_owned() => p.ok(),
                }?;
                Some(Unauthenticated {
                    _listener: listener,
                    _slot: slot,
                    _member: member,
                })
            }
        }
    }
}

/// Debug lines about refusals, at most one per interval, carrying
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
            waiting = MAX_WAITING_PER_SOURCE,
            "source has too many connections in progress and waiting; closed"
        );
        self.last = Some(now);
        self.unlogged = 0;
    }
}
