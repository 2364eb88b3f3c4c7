//! The SSH listener: `ssh -p 2222 TARGET@proxy`. Accepts connections under
//! a limit of unauthenticated ones, runs a russh session per connection on a
//! killable socket, and watches each admitted session's grant: warnings on
//! every channel's stderr, and at the end the farewell, exit status, close,
//! disconnect on both sides, then a hard close of both sockets.

use super::conn::{Conn, Shared};
use super::socket::Killable;
use crate::grants::Grants;
use crate::proxy::limiter::AuthLimiter;
use crate::sessions::{EndCause, EndReason};
use russh::{server, ChannelId, Disconnect};
use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// From accept to authenticated.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the farewell may take before the sockets are closed anyway.
pub const FAREWELL_LIMIT: Duration = Duration::from_secs(2);
/// After the disconnect, before the hard close.
const GRACE: Duration = Duration::from_millis(300);

pub struct SshFrontEnd {
    pub grants: Arc<Grants>,
    pub config: Arc<server::Config>,
    pub limiter: AuthLimiter,
}

/// Modern algorithms only. The extension pseudo-algorithms must be listed
/// or strict key exchange (the Terrapin fix) and server-sig-algs are lost.
pub fn modern_algorithms(server_side: bool) -> russh::Preferred {
    use russh::{cipher, kex};
    let kexes: &'static [kex::Name] = if server_side {
        &[
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]
    } else {
        &[
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::EXTENSION_SUPPORT_AS_CLIENT,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
        ]
    };
    russh::Preferred {
        kex: Cow::Borrowed(kexes),
        cipher: Cow::Borrowed(&[
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_GCM,
            cipher::AES_128_GCM,
        ]),
        ..Default::default()
    }
}

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
        preferred: modern_algorithms(true),
        ..Default::default()
    }
}

pub async fn serve(listener: TcpListener, fe: Arc<SshFrontEnd>, shutdown: CancellationToken) {
    let refused = fe.grants.rejected_counter("ssh", "protocol_error");
    crate::proxy::accept::serve(
        "ssh",
        listener,
        AUTH_TIMEOUT,
        shutdown,
        Some(refused),
        move |stream, peer, permit| connection(fe.clone(), stream, peer, permit),
    )
    .await
}

async fn connection(
    fe: Arc<SshFrontEnd>,
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let kill = CancellationToken::new();
    let shared = Arc::new(Shared::default());
    if let Ok(mut p) = shared.unauth_permit.lock() {
        *p = Some(permit);
    }
    // A client that never finishes authenticating is cut off.
    {
        let (shared, kill) = (shared.clone(), kill.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = kill.cancelled() => {}
                _ = tokio::time::sleep(AUTH_TIMEOUT) => {
                    if !shared.authenticated.load(Ordering::Acquire) {
                        kill.cancel();
                    }
                }
            }
        });
    }
    let conn = Conn {
        fe: fe.clone(),
        peer,
        kill: kill.clone(),
        shared: shared.clone(),
        refusal: None,
        target: String::new(),
        jump_user: None,
        offer_failed: false,
    };
    match server::run_stream(fe.config.clone(), Killable::new(tcp, &kill), conn).await {
        Ok(session) => {
            if let Err(e) = session.await {
                tracing::debug!(%peer, error = %e, "ssh session ended");
            }
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "ssh handshake failed");
            fe.grants.count_rejected("ssh", "protocol_error");
        }
    }
    // The client often hangs up on the farewell's disconnect before the
    // target has acted on it: killing the sockets now would cut the queued
    // signal and close to the target and leave its commands running (found
    // by the campaign). A session whose grant ended waits for the farewell.
    shared.client_gone.cancel();
    let ending = shared
        .guard
        .lock()
        .ok()
        .and_then(|g| g.as_ref().map(|g| g.token().is_cancelled()))
        .unwrap_or(false);
    if ending {
        let _ = tokio::time::timeout(FAREWELL_LIMIT * 2, shared.farewell_done.cancelled()).await;
    }
    // Both sockets, whatever state russh is in.
    kill.cancel();
    let guard = shared.guard.lock().ok().and_then(|mut g| g.take());
    if let Some(g) = guard {
        g.set_cause(EndCause::new(EndReason::ClientClosed));
        drop(g);
    }
}

/// Watches an admitted session: warnings, and the end of its grant.
pub fn watch(shared: Arc<Shared>, handle: server::Handle, kill: CancellationToken, target: String) {
    let idle = shared.idle_timeout.lock().ok().and_then(|i| *i);
    let Some(ending) = shared
        .guard
        .lock()
        .ok()
        .and_then(|g| g.as_ref().map(|g| g.ending(idle)))
    else {
        return;
    };
    let mut warnings = shared.warnings.lock().ok().and_then(|mut w| w.take());
    tokio::spawn(async move {
        tokio::pin!(ending);
        let cause = loop {
            tokio::select! {
                biased;
                _ = kill.cancelled() => return,
                cause = &mut ending => break cause,
                Some(text) = async { match warnings.as_mut() { Some(w) => w.recv().await, None => std::future::pending().await } } => {
                    let line = format!("\r\njitgate: {text}\r\n");
                    for id in channel_ids(&shared) {
                        let _ = tokio::time::timeout(FAREWELL_LIMIT, handle.extended_data(id, 1, line.clone().into_bytes())).await;
                    }
                }
            }
        };
        farewell(&shared, &handle, &target, &cause).await;
        shared.farewell_done.cancel();
        kill.cancel();
    });
}

/// Disconnects with `text` as the message (OpenSSH prints it), waits for
/// the session to end, and after FAREWELL_LIMIT kills the socket anyway.
/// Replies to channel opens jump russh's queue ahead of a disconnect, so a
/// refusal told this way must reject its open only after this returns.
/// New channels on the connection are refused from the start.
pub async fn hang_up(
    shared: &Shared,
    handle: &server::Handle,
    kill: &CancellationToken,
    text: String,
) {
    shared.ending.cancel();
    let bounded = async {
        let _ = handle
            .disconnect(Disconnect::ByApplication, text, "en".into())
            .await;
        kill.cancelled().await;
    };
    let _ = tokio::time::timeout(FAREWELL_LIMIT, bounded).await;
    kill.cancel();
}

fn channel_ids(shared: &Shared) -> Vec<ChannelId> {
    shared
        .channels
        .lock()
        .map(|m| m.keys().copied().collect())
        .unwrap_or_default()
}

/// The end of a session: processes on the target are told to stop, each
/// channel gets the farewell on stderr, exit status 255, EOF and close; once
/// the client has closed its channels (OpenSSH drops pending output on a
/// disconnect) both sides are disconnected. Bounded by FAREWELL_LIMIT: the
/// caller then kills both sockets whatever happened.
async fn farewell(shared: &Shared, handle: &server::Handle, target: &str, cause: &EndCause) {
    let text = format!("\r\njitgate: access to {target} ended: {cause}\r\n");
    // From here no channel opens and no request reaches the target: these
    // are all the channels the session will ever have (see `open`).
    let channels = shared.freeze();
    for c in &channels {
        // Commands without a pty survive a disconnect on OpenSSH: signal
        // them until sshd reports their end, then close (`UpChannel::end`;
        // sshd refuses signals for root logins, where the hangup of the
        // closed channel is what stops a pty session).
        c.end();
    }
    let upstream = shared.upstream.lock().ok().and_then(|u| u.clone());
    let ids = channel_ids(shared);
    let say = async {
        for id in &ids {
            let _ = handle
                .extended_data(*id, 1, text.clone().into_bytes())
                .await;
            let _ = handle.exit_status_request(*id, 255).await;
            let _ = handle.eof(*id).await;
            let _ = handle.close(*id).await;
        }
        for _ in 0..20 {
            if channel_ids(shared).is_empty() || shared.client_gone.is_cancelled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = handle
            .disconnect(
                Disconnect::ByApplication,
                format!("access to {target} ended: {cause}"),
                "en".into(),
            )
            .await;
    };
    // The signal and close must be handed to the target's connection before
    // its disconnect: one that overtakes them (seen under load in the
    // campaign's revoke storm) leaves a non-pty command running there.
    let target_done = async {
        for c in &channels {
            c.upstream_done.cancelled().await;
        }
    };
    let _ = tokio::time::timeout(FAREWELL_LIMIT, async { tokio::join!(say, target_done) }).await;
    if let Some(up) = upstream {
        // Until the target hangs up in turn (so everything sent before the
        // disconnect has reached it), at most 500 ms.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            let _ = up
                .disconnect(Disconnect::ByApplication, "session ended by jitgate", "en")
                .await;
            while !up.is_closed() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
    // The engineer's side may still be reading the farewell.
    tokio::select! {
        _ = tokio::time::sleep(GRACE) => {}
        _ = shared.client_gone.cancelled() => {}
    }
}
