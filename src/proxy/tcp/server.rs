//! The TCP tunnel listener: TLS, handshake (bounded size and time),
//! admission under a grant, upstream connect, relay.

use super::handshake::{self, Hello, Kind, Reply, Status};
use crate::config::TargetKind;
use crate::grants::{Grants, Refusal};
use crate::relay::readahead::ReadAhead;
use crate::sessions::{EndCause, EndReason};
use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ENDED_KEEP: Duration = Duration::from_secs(300);

/// Why recent sessions ended, for `status` queries; keyed by session id and
/// answerable only with the session's own secret.
#[derive(Default)]
pub struct EndedSessions {
    map: DashMap<String, ([u8; 32], Status, String, Instant)>,
}

impl EndedSessions {
    fn record(&self, id: &str, secret_sha: [u8; 32], cause: &EndCause, target: &str) {
        if self.map.len() > 100_000 {
            self.map.retain(|_, v| v.3.elapsed() < ENDED_KEEP);
        }
        let status = match cause.reason {
            EndReason::Expired
            | EndReason::Revoked
            | EndReason::Locked
            | EndReason::PolicyChanged => Status::GrantOver,
            _ => Status::Ended,
        };
        let message = format!("access to {target} ended: {cause}");
        self.map.insert(
            id.to_string(),
            (secret_sha, status, message, Instant::now()),
        );
    }

    fn lookup(&self, id: &str, secret: &str) -> Option<(Status, String)> {
        let e = self.map.get(id)?;
        crate::secrets::digest_eq(&e.0, &crate::secrets::sha256(secret.as_bytes()))
            .then(|| (e.1, e.2.clone()))
    }
}

pub struct TcpFrontEnd {
    pub grants: Arc<Grants>,
    pub tls: TlsAcceptor,
    pub ended: EndedSessions,
}

pub async fn serve(listener: TcpListener, fe: Arc<TcpFrontEnd>, shutdown: CancellationToken) {
    let refused = fe.grants.rejected_counter("tcp", "protocol_error");
    crate::proxy::accept::serve(
        "tcp",
        listener,
        HANDSHAKE_TIMEOUT,
        shutdown,
        Some(refused),
        move |stream, peer, permit| handle(fe.clone(), stream, peer.to_string(), permit),
    )
    .await
}

/// What `jitgate connect` learns from a check: when the grant ends and
/// when to warn, so it can say so on its own terminal.
fn check_answer(a: &crate::grants::Admitted) -> String {
    let warn: Vec<u64> = a
        .policy
        .as_ref()
        .map(|p| p.warn_before.iter().map(|w| w.as_secs()).collect())
        .unwrap_or_default();
    serde_json::json!({
        "grant_id": a.grant.id,
        "expires_at_ms": a.grant.expires_at_ms,
        "warn_before_s": warn,
    })
    .to_string()
}

fn reject(fe: &TcpFrontEnd, status: Status) {
    fe.grants.count_rejected("tcp", status.metric_reason());
}

/// Counts a refusal under the label its type carries.
fn refuse(fe: &TcpFrontEnd, r: &Refusal) {
    fe.grants.count_rejected("tcp", r.metric_reason());
}

/// The tunnel protocol's status for a refusal.
fn status_of(r: &Refusal) -> Status {
    match r {
        Refusal::UnknownTarget(_) => Status::UnknownTarget,
        Refusal::BadSecret => Status::BadSecret,
        Refusal::NoGrant(_) | Refusal::GrantEnded(_) => Status::NoGrant,
        Refusal::Locked(_) => Status::Locked,
        Refusal::MaxSessions(_) => Status::MaxSessions,
        Refusal::Unreachable(_) => Status::UpstreamUnreachable,
        Refusal::Unavailable | Refusal::Unrecorded(_) => Status::Unavailable,
    }
}

/// A session past its handshake, admitted and connected: only what the
/// relay and its end need. The grant, target and policy records and the
/// secret itself are dropped before the session parks.
struct Relaying {
    tls: tokio_rustls::server::TlsStream<ReadAhead<TcpStream>>,
    upstream: TcpStream,
    guard: crate::sessions::SessionGuard,
    idle: Option<Duration>,
    sid: String,
    secret_sha: [u8; 32],
    target: String,
}

/// One connection: the setup runs in its own heap allocation, freed once
/// the session relays, so a parked (idle) session's task holds only the
/// relay's state and not the larger state of the TLS handshake, admission
/// and upstream connect futures (an async fn's state is as large as its
/// largest await point, for its whole life).
async fn handle(
    fe: Arc<TcpFrontEnd>,
    stream: TcpStream,
    peer: String,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let Some(mut r) = Box::pin(setup(fe.clone(), stream, peer, permit)).await else {
        return;
    };
    let cause = crate::relay::run(&mut r.tls, &mut r.upstream, &r.guard, r.idle).await;
    // Record why before the sockets close: `connect` asks as soon as it
    // sees the close.
    fe.ended.record(&r.sid, r.secret_sha, &cause, &r.target);
    // Both sockets close before the guard ends the session.
    drop(r.tls);
    drop(r.upstream);
    drop(r.guard);
}

/// TLS, handshake, admission, session entry and upstream connect; `None`
/// once the connection was answered and is done.
async fn setup(
    fe: Arc<TcpFrontEnd>,
    stream: TcpStream,
    peer: String,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Option<Relaying> {
    let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut tls = fe.tls.accept(ReadAhead::new(stream)).await?;
        let hello = handshake::read_hello(&mut tls)
            .await
            .map_err(std::io::Error::other);
        Ok::<_, std::io::Error>((tls, hello))
    })
    .await;
    let (mut tls, hello) = match accepted {
        Err(_) => {
            tracing::debug!(%peer, "tcp handshake timed out");
            reject(&fe, Status::ProtocolError);
            return None;
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "tls handshake failed");
            reject(&fe, Status::ProtocolError);
            return None;
        }
        Ok(Ok(x)) => x,
    };
    let hello: Hello = match hello {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "bad tunnel handshake");
            reject(&fe, Status::ProtocolError);
            let _ = reply(&mut tls, Status::ProtocolError, &e.to_string(), "").await;
            return None;
        }
    };
    if hello.kind == Kind::Status {
        drop(permit);
        let msg = fe.ended.lookup(&hello.session_id, &hello.secret);
        let (st, m) = match msg {
            Some(x) => x,
            None => (Status::NoGrant, "no record of that session".to_string()),
        };
        let _ = reply(&mut tls, st, &m, &hello.session_id).await;
        return None;
    }
    let admitted = match fe
        .grants
        .admit_by_secret(&hello.target, TargetKind::Tcp, &hello.secret)
        .await
    {
        Ok(a) => a,
        Err(r) => {
            // An unknown target answers as a bad secret does unless the
            // secret is valid: without one, nothing tells the client which
            // targets exist (the log and the metric keep the real reason).
            let holds_a_grant = matches!(r, Refusal::UnknownTarget(_))
                && fe.grants.holds_valid_secret(&hello.secret).await;
            let shown = match &r {
                Refusal::UnknownTarget(_) if !holds_a_grant => Refusal::BadSecret.to_string(),
                _ => r.to_string(),
            };
            let st = match &r {
                Refusal::UnknownTarget(_) if !holds_a_grant => Status::BadSecret,
                _ => status_of(&r),
            };
            tracing::info!(%peer, target = %hello.target.escape_debug(), reason = r.metric_reason(), blame = r.blame().as_str(), "tcp connection refused: {}", r.to_string().escape_debug());
            refuse(&fe, &r);
            let _ = reply(&mut tls, st, &shown, "").await;
            return None;
        }
    };
    if hello.kind == Kind::Check {
        drop(permit);
        let _ = reply(&mut tls, Status::Ok, &check_answer(&admitted), "").await;
        return None;
    }
    let g = &admitted.grant;
    let guard = match fe
        .grants
        .open_session(&admitted, TargetKind::Tcp, peer.clone(), None)
        .await
    {
        Ok(s) => s,
        Err(r) => {
            refuse(&fe, &r);
            // A target removed by a reload since admission: its grant is over.
            let st = match &r {
                Refusal::UnknownTarget(_) => Status::NoGrant,
                _ => status_of(&r),
            };
            let _ = reply(&mut tls, st, &r.to_string(), "").await;
            return None;
        }
    };
    let upstream = tokio::time::timeout(
        UPSTREAM_CONNECT_TIMEOUT,
        TcpStream::connect(&admitted.target.address),
    )
    .await;
    let upstream = match upstream {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => {
            let r = Refusal::Unreachable(format!("cannot reach {}: {e}", admitted.target.name));
            upstream_failed(&fe, &mut tls, guard, r).await;
            return None;
        }
        Err(_) => {
            let r = Refusal::Unreachable(format!(
                "cannot reach {}: connect timed out",
                admitted.target.name
            ));
            upstream_failed(&fe, &mut tls, guard, r).await;
            return None;
        }
    };
    let _ = upstream.set_nodelay(true);
    drop(permit);
    guard.start(None);
    let sid = guard.info().id.clone();
    if reply(&mut tls, Status::Ok, "", &sid).await.is_err() {
        guard.set_cause(crate::sessions::EndCause::new(
            crate::sessions::EndReason::ClientClosed,
        ));
        return None;
    }
    Some(Relaying {
        tls,
        upstream,
        guard,
        idle: admitted.policy.as_ref().and_then(|p| p.idle_timeout),
        sid,
        secret_sha: crate::secrets::sha256(hello.secret.as_bytes()),
        target: g.target.clone(),
    })
}

async fn upstream_failed<S: tokio::io::AsyncWrite + Unpin>(
    fe: &TcpFrontEnd,
    tls: &mut S,
    guard: crate::sessions::SessionGuard,
    r: Refusal,
) {
    tracing::warn!(target = %guard.info().target, blame = r.blame().as_str(), "{r}");
    guard.set_cause(EndCause::new(EndReason::Error));
    refuse(fe, &r);
    let _ = reply(tls, status_of(&r), &r.to_string(), "").await;
}

async fn reply<S: tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    status: Status,
    message: &str,
    sid: &str,
) -> std::io::Result<()> {
    handshake::write_reply(
        s,
        &Reply {
            status,
            message: message.to_string(),
            session_id: sid.to_string(),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    /// The size of the future a function returns, without calling it.
    fn future_size<A, B, C, D, R, F: Fn(A, B, C, D) -> R>(_: F) -> usize {
        std::mem::size_of::<R>()
    }

    /// Every idle session's task is as large as `handle`'s future for its
    /// whole life: the setup's larger state must stay out of it (it was
    /// 6,168 bytes with the setup inline; the TLS stream alone is ~1.2 KiB).
    #[test]
    fn a_parked_session_does_not_carry_the_setup_state() {
        let parked = future_size(super::handle);
        let setup = future_size(super::setup);
        assert!(parked < 3 * 1024, "handle's future is {parked} bytes");
        assert!(setup > parked, "setup {setup} vs handle {parked}");
    }
}
