//! The PostgreSQL relay: bytes pass unaltered, but both streams are followed
//! frame by frame ([`FrameTracker`]) so the proxy knows (a) where it may
//! inject a NoticeResponse or the final FATAL (only between two server
//! messages) and (b) whether a query is in flight (so it can be cancelled
//! upstream when the grant ends, leaving no backend working).
//!
//! At a grant end: stop relaying client messages; let the server finish the
//! message it is in the middle of (bounded by FAREWELL_GRACE); send Terminate
//! upstream and close; deliver the FATAL 57P01 and close the client; the
//! caller then cancels an in-flight query and terminates the backend by pid
//! until it is confirmed gone (`terminate.rs`, bounded).

use super::codec::{self, FrameTracker, Severity};
use super::params::StatusRewrite;
use super::stream::PgStream;
use crate::recording::statements::StatementLog;
use crate::relay::pool;
use crate::sessions::{EndCause, EndReason, SessionGuard, SessionInfo};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long the server may take to finish its current message, and the
/// client to take the farewell, before the sockets are closed regardless.
pub const FAREWELL_GRACE: Duration = Duration::from_millis(500);

/// What the client has asked that the server has not finished answering.
#[derive(Default)]
struct Flow {
    /// Query, Sync and FunctionCall messages not yet answered by ReadyForQuery.
    pending: AtomicI64,
    /// Extended-protocol messages sent since the last Sync.
    unsynced: AtomicBool,
}

impl Flow {
    fn in_flight(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0 || self.unsynced.load(Ordering::Acquire)
    }
}

fn io_err(e: codec::CodecError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

async fn client_to_upstream(
    r: &mut ReadHalf<&mut PgStream>,
    w: &mut WriteHalf<&mut PgStream>,
    t: &mut FrameTracker,
    flow: &Flow,
    info: &SessionInfo,
    log: Option<&StatementLog>,
) -> std::io::Result<()> {
    loop {
        let Some((buf, n)) = pool::read_borrowed(r).await? else {
            return Ok(());
        };
        t.scan(&buf[..n], |tag| match tag {
            b'Q' | b'F' => {
                flow.pending.fetch_add(1, Ordering::AcqRel);
            }
            b'S' => {
                flow.pending.fetch_add(1, Ordering::AcqRel);
                flow.unsynced.store(false, Ordering::Release);
            }
            // CopyData/Done/Fail belong to a Query already counted; Terminate ends.
            b'd' | b'c' | b'f' | b'X' => {}
            _ => flow.unsynced.store(true, Ordering::Release),
        })
        .map_err(io_err)?;
        if let Some(l) = log {
            l.client(&buf[..n]);
        }
        w.write_all(&buf[..n]).await?;
        pool::give(buf);
        w.flush().await?;
        info.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        info.touch();
    }
}

enum ServerEnd {
    /// Stopped between two messages, as asked.
    AtBoundary,
    Eof,
}

fn notice(text: &str) -> Vec<u8> {
    codec::notice_response(Severity::Warning, "01000", &format!("jitgate: {text}"))
}

async fn upstream_to_client(
    r: &mut ReadHalf<&mut PgStream>,
    w: &mut WriteHalf<&mut PgStream>,
    // The server stream's framing and the ParameterStatus rewrite move together.
    (t, rw): (&mut FrameTracker, &mut StatusRewrite),
    flow: &Flow,
    info: &SessionInfo,
    warnings: &mut mpsc::Receiver<String>,
    // Where to stop, and the statement log that reads what passes.
    (stop, log): (&CancellationToken, Option<&StatementLog>),
) -> std::io::Result<ServerEnd> {
    let mut warnings_open = true;
    loop {
        let boundary = t.at_boundary();
        tokio::select! {
            biased;
            _ = stop.cancelled(), if boundary => return Ok(ServerEnd::AtBoundary),
            m = warnings.recv(), if boundary && warnings_open => match m {
                Some(text) => {
                    w.write_all(&notice(&text)).await?;
                    w.flush().await?;
                }
                None => warnings_open = false,
            },
            got = pool::read_borrowed(r) => {
                let Some((buf, n)) = got? else { return Ok(ServerEnd::Eof) };
                let first = t
                    .scan(&buf[..n], |tag| {
                        if tag == b'Z' {
                            let _ = flow.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| Some((p - 1).max(0)));
                        }
                    })
                    .map_err(io_err)?;
                let data = &buf[..n];
                if let Some(l) = log {
                    l.server(data);
                }
                if stop.is_cancelled() {
                    // Finishing the current message only; the rest is dropped.
                    if let Some(b) = first {
                        w.write_all(rw.feed(&data[..b])).await?;
                        w.flush().await?;
                        return Ok(ServerEnd::AtBoundary);
                    }
                    w.write_all(rw.feed(data)).await?;
                } else {
                    let pending_warning = match first {
                        Some(_) if warnings_open => warnings.try_recv().ok(),
                        _ => None,
                    };
                    match (pending_warning, first) {
                        (Some(text), Some(b)) => {
                            w.write_all(rw.feed(&data[..b])).await?;
                            w.write_all(&notice(&text)).await?;
                            w.write_all(rw.feed(&data[b..])).await?;
                        }
                        _ => w.write_all(rw.feed(data)).await?,
                    }
                }
                pool::give(buf);
                w.flush().await?;
                info.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                info.touch();
            }
        }
    }
}

/// How the relay ended.
pub struct Ended {
    pub cause: EndCause,
    /// Some(whether a query was in flight) when the session ended from our
    /// side (grant end, timers): the caller must then make sure the backend
    /// is gone ([`super::terminate::Backend::make_sure_gone`]) once the
    /// sockets are closed.
    pub grant_end: Option<bool>,
}

/// Relays until the session ends and says goodbye as the cause requires.
pub async fn run(
    client: &mut PgStream,
    upstream: &mut PgStream,
    session: &SessionGuard,
    idle_timeout: Option<Duration>,
    mut warnings: mpsc::Receiver<String>,
    mut rw: StatusRewrite,
    log: Option<&StatementLog>,
) -> Ended {
    let info = session.info().clone();
    let flow = Flow::default();
    let (mut ct, mut st) = (FrameTracker::default(), FrameTracker::default());
    let stop = CancellationToken::new();
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);

    let farewell_due;
    let mut server_at_boundary = true;
    {
        let c2u = client_to_upstream(&mut cr, &mut uw, &mut ct, &flow, &info, log);
        let u2c = upstream_to_client(
            &mut ur,
            &mut cw,
            (&mut st, &mut rw),
            &flow,
            &info,
            &mut warnings,
            (&stop, log),
        );
        tokio::pin!(c2u, u2c);
        let ending = session.ending(idle_timeout);
        farewell_due = tokio::select! {
            biased;
            _ = ending => true,
            r = &mut c2u => {
                let reason = if r.is_err() { EndReason::Error } else { EndReason::ClientClosed };
                if let Err(e) = r { tracing::debug!(error = %e, "client stream ended"); }
                session.set_cause(EndCause::new(reason));
                false
            }
            r = &mut u2c => {
                let reason = if r.is_err() { EndReason::Error } else { EndReason::UpstreamClosed };
                if let Err(e) = r { tracing::debug!(error = %e, "server stream ended"); }
                session.set_cause(EndCause::new(reason));
                false
            }
        };
        if farewell_due {
            // Client messages are no longer relayed (c2u is not polled again);
            // the server may finish the message it is in the middle of.
            stop.cancel();
            server_at_boundary = matches!(
                tokio::time::timeout(FAREWELL_GRACE, &mut u2c).await,
                Ok(Ok(ServerEnd::AtBoundary))
            );
        }
    }
    let cause = info
        .cause()
        .unwrap_or_else(|| EndCause::new(EndReason::Error));
    if !farewell_due {
        return Ended {
            cause,
            grant_end: None,
        };
    }
    let terminate = async {
        if ct.at_boundary() {
            let _ = uw.write_all(&codec::message(b'X', &[])).await;
        }
        let _ = uw.shutdown().await;
    };
    let farewell = async {
        if server_at_boundary {
            let text = format!(
                "terminating connection: access to {} ended: {}",
                info.target, cause
            );
            let e = codec::error_response(Severity::Fatal, "57P01", &text, None);
            let _ = cw.write_all(&e).await;
            let _ = cw.flush().await;
        }
        let _ = cw.shutdown().await;
    };
    let _ = tokio::time::timeout(FAREWELL_GRACE, async { tokio::join!(terminate, farewell) }).await;
    Ended {
        cause,
        grant_end: Some(flow.in_flight()),
    }
}
