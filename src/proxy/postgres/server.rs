//! The PostgreSQL listener: negotiation (GSSENC → 'N', SSLRequest or direct
//! TLS, CancelRequest), startup with `user=USER@TARGET`, SCRAM-SHA-256(-PLUS)
//! against the grant's connect-secret verifier, admission, the upstream
//! login with the target's credential, then the relay.
//!
//! Every refusal is an ErrorResponse with the right SQLSTATE, so psql shows
//! the engineer what to do next.

use super::codec::{self, Initial, Severity};
pub use super::front::PgFrontEnd;
use super::login::{login, Refuse};
use super::params::StatusRewrite;
use super::stream::PgStream;
use super::terminate::Backend;
use super::upstream;
use crate::config::TargetKind;
use crate::grants::{Admitted, Refusal};
use crate::recording::RecordingKind;
use crate::relay::readahead::ReadAhead;
use crate::sessions::{EndCause, EndReason};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// From accept to authenticated: a client that has not finished its
/// startup and authentication by then is cut off.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const WARNING_QUEUE: usize = 8;

pub async fn serve(listener: TcpListener, fe: Arc<PgFrontEnd>, shutdown: CancellationToken) {
    let refused = fe.grants.rejected_counter("postgres", "protocol_error");
    crate::proxy::accept::serve(
        "postgres",
        listener,
        STARTUP_TIMEOUT,
        shutdown,
        Some(refused),
        move |stream, peer, permit| handle(fe.clone(), stream, peer, permit),
    )
    .await
}

enum Opened {
    Startup {
        stream: PgStream,
        params: Vec<(String, String)>,
    },
    /// A CancelRequest was handled; nothing more to do.
    Cancelled,
}

async fn handle(
    fe: Arc<PgFrontEnd>,
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut client: Option<PgStream> = None;
    let login = tokio::time::timeout(STARTUP_TIMEOUT, async {
        let opened = open(&fe, tcp, &mut client).await?;
        let (stream, params) = match opened {
            Opened::Cancelled => return Ok(None),
            Opened::Startup { stream, params } => (stream, params),
        };
        client = Some(stream);
        let stream = client.as_mut().expect("just set");
        login(&fe, stream, params, &peer).await.map(Some)
    })
    .await;
    let ready = match login {
        Err(_) => Err(Refuse::new(
            "08P01",
            "protocol_error",
            format!(
                "startup and authentication must finish within {}s",
                STARTUP_TIMEOUT.as_secs()
            ),
        )),
        Ok(r) => r,
    };
    let (admitted, params, user) = match ready {
        Ok(Some(x)) => x,
        Ok(None) => return,
        Err(r) => {
            fe.grants.count_rejected("postgres", r.reason);
            tracing::info!(%peer, reason = r.reason, "postgres connection refused: {}", r.message);
            if let Some(mut s) = client {
                let e = codec::error_response(Severity::Fatal, r.code, &r.message, r.hint);
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let _ = s.write_all(&e).await;
                    let _ = s.flush().await;
                    let _ = s.shutdown().await;
                })
                .await;
            }
            return;
        }
    };
    let client = client.expect("authenticated client");
    run_session(fe, client, admitted, params, user, peer, permit).await;
}

/// Negotiation up to the StartupMessage (or a CancelRequest).
async fn open(
    fe: &PgFrontEnd,
    mut tcp: TcpStream,
    client: &mut Option<PgStream>,
) -> Result<Opened, Refuse> {
    // Direct TLS (PostgreSQL 17 `sslnegotiation=direct`): a ClientHello
    // straight away, which no startup packet can start with.
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 1 && first[0] == 0x16 {
        let Some(acceptor) = &fe.tls else {
            return Err(Refuse::new(
                "08P01",
                "protocol_error",
                "TLS is not configured",
            ));
        };
        let tls = acceptor
            .accept(ReadAhead::new(tcp))
            .await
            .map_err(|e| Refuse::new("08P01", "protocol_error", format!("TLS failed: {e}")))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"postgresql") {
            return Err(Refuse::new(
                "08P01",
                "protocol_error",
                "direct TLS requires the ALPN protocol \"postgresql\"",
            ));
        }
        let mut s = PgStream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls)));
        return after_tls(fe, &mut s).await.map(|o| match o {
            Some(params) => Opened::Startup { stream: s, params },
            None => Opened::Cancelled,
        });
    }
    let mut gss_answered = false;
    loop {
        match codec::read_initial(&mut tcp).await? {
            Initial::GssEncRequest if !gss_answered => {
                gss_answered = true;
                tcp.write_all(b"N").await?;
            }
            Initial::SslRequest => {
                let Some(acceptor) = &fe.tls else {
                    tcp.write_all(b"N").await?;
                    continue;
                };
                tcp.write_all(b"S").await?;
                // Nothing was read past the SSLRequest (unbuffered reads), so
                // plaintext sent before the handshake cannot be smuggled in
                // as if it were encrypted (CVE-2021-23214): TLS rejects it.
                let tls = acceptor.accept(ReadAhead::new(tcp)).await.map_err(|e| {
                    Refuse::new("08P01", "protocol_error", format!("TLS failed: {e}"))
                })?;
                let mut s = PgStream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls)));
                return match after_tls(fe, &mut s).await {
                    Ok(Some(params)) => Ok(Opened::Startup { stream: s, params }),
                    Ok(None) => Ok(Opened::Cancelled),
                    Err(r) => {
                        *client = Some(s);
                        Err(r)
                    }
                };
            }
            Initial::Cancel { pid, key } => {
                cancel(fe, pid, &key).await;
                return Ok(Opened::Cancelled);
            }
            Initial::Startup { minor, params } => {
                let mut s = PgStream::Plain(tcp);
                if !fe.allow_plaintext {
                    *client = Some(s);
                    return Err(Refuse::new(
                        "28000",
                        "protocol_error",
                        "jitgate requires TLS: connect with sslmode=require",
                    ));
                }
                return match negotiate_version(&mut s, minor, params).await {
                    Ok(params) => Ok(Opened::Startup { stream: s, params }),
                    Err(r) => {
                        *client = Some(s);
                        Err(r)
                    }
                };
            }
            Initial::GssEncRequest => {
                *client = Some(PgStream::Plain(tcp));
                return Err(Refuse::new(
                    "08P01",
                    "protocol_error",
                    "repeated GSSENCRequest",
                ));
            }
        }
    }
}

/// Inside TLS: a StartupMessage or a CancelRequest (newer libpq sends
/// cancels over TLS).
async fn after_tls(
    fe: &PgFrontEnd,
    s: &mut PgStream,
) -> Result<Option<Vec<(String, String)>>, Refuse> {
    match codec::read_initial(s).await? {
        Initial::Startup { minor, params } => negotiate_version(s, minor, params).await.map(Some),
        Initial::Cancel { pid, key } => {
            cancel(fe, pid, &key).await;
            // A clean TLS close: libpq's cancel API reads an unannounced
            // EOF as a failed cancel.
            let _ = s.shutdown().await;
            Ok(None)
        }
        _ => Err(Refuse::new(
            "08P01",
            "protocol_error",
            "unexpected negotiation packet inside TLS",
        )),
    }
}

/// We speak protocol 3.0: a client asking for more, or for `_pq_.`
/// options, is told so with NegotiateProtocolVersion and continues on 3.0.
async fn negotiate_version(
    s: &mut PgStream,
    minor: i32,
    params: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, Refuse> {
    let (options, params): (Vec<_>, Vec<_>) = params
        .into_iter()
        .partition(|(k, _)| k.starts_with("_pq_."));
    if minor > 0 || !options.is_empty() {
        let names: Vec<String> = options.into_iter().map(|(k, _)| k).collect();
        s.write_all(&codec::negotiate_protocol_version(&names))
            .await?;
    }
    Ok(params)
}

async fn cancel(fe: &PgFrontEnd, pid: i32, key: &[u8]) {
    match fe.cancels.lookup(pid, key) {
        Some(t) => {
            if let Err(e) = upstream::cancel(&t).await {
                tracing::warn!(error = %e, "forwarding a cancel request failed");
            }
        }
        None => tracing::debug!("cancel request with an unknown key dropped"),
    }
}

async fn run_session(
    fe: Arc<PgFrontEnd>,
    mut client: PgStream,
    admitted: Admitted,
    params: Vec<(String, String)>,
    user: String,
    peer: std::net::SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let g = &admitted.grant;
    let (warn_tx, warn_rx) = tokio::sync::mpsc::channel(WARNING_QUEUE);
    let guard = match fe
        .grants
        .open_session(
            &admitted,
            TargetKind::Postgres,
            peer.to_string(),
            Some(warn_tx),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return refuse_late(&fe, &mut client, sqlstate_of(&e), &e).await;
        }
    };
    let sid = guard.info().id.clone();
    let recordings = fe.grants.recordings().clone();
    let recording = match recordings.open_or_refuse(
        guard.info(),
        RecordingKind::Postgres,
        &admitted.grant.policy,
    ) {
        Ok(r) => r.map(|o| o.recording),
        Err(why) => {
            guard.set_cause(EndCause::new(EndReason::Error));
            return refuse_late(&fe, &mut client, "57P03", &Refusal::Unrecorded(why)).await;
        }
    };
    let client_app = params
        .iter()
        .find(|(k, _)| k == "application_name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut up_params: Vec<(String, String)> = params
        .into_iter()
        .filter(|(k, _)| k != "application_name")
        .collect();
    up_params.push(("application_name".into(), format!("jitgate:{user}:{sid}")));
    let up = match upstream::connect(&admitted.target, &up_params).await {
        Ok(u) => u,
        Err(e) => {
            guard.set_cause(EndCause::new(EndReason::Error));
            tracing::warn!(session = %sid, target = %g.target, "upstream login failed: {e}");
            let code = match e.sqlstate() {
                Some("3D000") => "3D000",
                _ => "08006",
            };
            let r = Refusal::Unreachable(format!("cannot connect to {}: {e}", g.target));
            return refuse_late(&fe, &mut client, code, &r).await;
        }
    };
    let minted = fe.cancels.mint(up.cancel.clone());
    // The client sees its own application_name (the upstream keeps the
    // tag) and its backend's real pid with a key minted here.
    let mut upstream_app = String::new();
    let mut hello = Vec::new();
    for (k, v) in &up.parameters {
        if k == "application_name" {
            upstream_app = v.clone();
            hello.extend(codec::parameter_status(k, &client_app));
        } else {
            hello.extend(codec::parameter_status(k, v));
        }
    }
    hello.extend(codec::backend_key_data(minted.pid, &minted.key));
    if recording.is_some() {
        hello.extend(codec::notice_response(
            Severity::Notice,
            "01000",
            "jitgate: this session is recorded",
        ));
    }
    hello.extend(codec::ready_for_query(b'I'));
    if client.write_all(&hello).await.is_err() || client.flush().await.is_err() {
        guard.set_cause(EndCause::new(EndReason::ClientClosed));
        return;
    }
    drop(permit);
    guard.start(Some(json!({"backend_pid": up.cancel.pid})));
    let span = tracing::info_span!("session", session = %sid, user = %g.user, target = %g.target, backend_pid = up.cancel.pid);
    let idle = admitted.policy.as_ref().and_then(|p| p.idle_timeout);
    let mut upstream = up.stream;
    let backend = Backend {
        cancel: up.cancel,
        target: admitted.target.clone(),
        database: up_params
            .iter()
            .find(|(k, _)| k == "database")
            .map(|(_, v)| v.clone()),
        session: sid.to_string(),
    };
    let rw = StatusRewrite::new(&upstream_app, &client_app);
    let log = recording
        .clone()
        .map(crate::recording::statements::StatementLog::new);
    let relay = super::relay::run(
        &mut client,
        &mut upstream,
        &guard,
        idle,
        warn_rx,
        rw,
        log.as_ref(),
    );
    let ended = tracing::Instrument::instrument(relay, span).await;
    drop(client);
    drop(upstream);
    drop(minted);
    // The client has its FATAL and both sockets are closed; before the
    // session counts as closed (and a revoke returns), the backend must be
    // gone too: a backend that traps the cancel keeps running otherwise.
    if let Some(in_flight) = ended.grant_end {
        let gone = backend.make_sure_gone(in_flight).await;
        guard.set_end_detail(json!({ "backend_confirmed_gone": gone }));
    }
    if let Some(r) = &recording {
        let detail = recordings
            .seal(guard.info(), r, RecordingKind::Postgres)
            .await;
        let _ = guard.info().recording_detail.set(detail);
    }
    drop(guard);
}

/// The SQLSTATE a refusal after AuthenticationOk is sent with.
fn sqlstate_of(r: &Refusal) -> &'static str {
    match r {
        Refusal::MaxSessions(_) => "53300",
        Refusal::Unavailable => "57P03",
        Refusal::Unreachable(_) => "08006",
        _ => "28000",
    }
}

/// A refusal after AuthenticationOk (admission or upstream failure).
async fn refuse_late(fe: &PgFrontEnd, s: &mut PgStream, code: &str, r: &Refusal) {
    let reason = r.metric_reason();
    fe.grants.count_rejected("postgres", reason);
    tracing::info!(
        reason,
        blame = r.blame().as_str(),
        "postgres session refused: {r}"
    );
    let e = codec::error_response(Severity::Fatal, code, &r.to_string(), None);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = s.write_all(&e).await;
        let _ = s.flush().await;
        let _ = s.shutdown().await;
    })
    .await;
}
