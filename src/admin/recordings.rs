//! The recording routes (SPEC "Admin API", second wave):
//! `GET /v1/recordings` (a JSON list, through the router), and the two
//! that stream, answered here before the router's JSON path:
//! `GET /v1/sessions/{id}/recording` (the file, in chunks) and
//! `GET /v1/sessions/{id}/live` (Server-Sent Events: every line from the
//! session's start, then each new one, then `end`).
//!
//! Invariants:
//! - Access is checked on the recording's own metadata (its user and the
//!   governing policy), and every fetch and watch is audited.
//! - A watcher never slows the session: the writer drops a watcher whose
//!   queue is full; the stream then ends with a `dropped` event.
//! - Memory per response is bounded: chunks go through a small channel.

use super::error::ApiError;
use super::handlers::Ctx;
use super::http::{error, json, Query, Resp};
use super::AdminState;
use crate::audit::AuditEntry;
use crate::recording::{access, Meta};
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{header, Request, Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::mpsc;

/// A response body fed by a task through a bounded channel.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

pub type AnyBody = Either<Full<Bytes>, ChannelBody>;

/// Chunks in flight per response.
const CHUNKS: usize = 8;
const CHUNK: usize = 64 << 10;

/// `GET /v1/recordings[?user=&target=&after=]`: what the caller may see.
pub async fn list(ctx: Ctx, query: Option<&str>) -> Result<Resp, ApiError> {
    let q = Query::parse(query, &["user", "target", "after"])?;
    let after = match q.get("after").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            humantime::parse_rfc3339_weak(s)
                .map_err(|_| ApiError::bad_request("after must be an RFC 3339 time"))?,
        ),
    };
    let after_ms = after.map(|t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    });
    let rec = ctx.state.grants.recordings().clone();
    let all = tokio::task::spawn_blocking(move || rec.list())
        .await
        .unwrap_or_default();
    let rows: Vec<serde_json::Value> = all
        .iter()
        .filter(|m| {
            access::may_view(
                &ctx.cfg,
                &ctx.caller.user,
                &ctx.caller.groups,
                ctx.caller.admin,
                m,
            )
        })
        .filter(|m| q.get("user").is_none_or(|u| u.is_empty() || u == m.user))
        .filter(|m| {
            q.get("target")
                .is_none_or(|t| t.is_empty() || t == m.target)
        })
        .filter(|m| after_ms.is_none_or(|a| m.started_at_ms > a))
        .take(1000)
        .map(access::row)
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "recordings": rows }),
    ))
}

/// Answers a streaming route (see the module doc).
pub async fn serve(
    state: Arc<AdminState>,
    route: &'static str,
    id: String,
    req: Request<Incoming>,
) -> Result<Response<AnyBody>, ApiError> {
    let cfg = state.grants.config_now();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = match super::auth::authenticate(&cfg, &state.identity, auth).await {
        Ok(c) => c,
        // A sign-in token cannot be checked without the store: fail closed.
        Err(e) => {
            tracing::warn!(error = %e, "cannot check a sign-in token");
            state.grants.count_unauthenticated("bad_token");
            return Err(ApiError::new(
                hyper::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store is unavailable, so sign-in tokens cannot be checked; retry",
            ));
        }
    };
    let Some(caller) = caller else {
        let reason = if auth.is_some() {
            "bad_token"
        } else {
            "missing_token"
        };
        state.grants.count_unauthenticated(reason);
        return Err(ApiError::unauthorized());
    };
    let rec = state.grants.recordings().clone();
    let lookup = id.clone();
    let found = {
        let rec = rec.clone();
        tokio::task::spawn_blocking(move || rec.find(&lookup))
            .await
            .ok()
            .flatten()
    };
    let Some((meta, path)) = found else {
        return Err(ApiError::not_found(format!(
            "no recording of session {id} on this instance ({})",
            cfg.instance
        )));
    };
    if !access::may_view(&cfg, &caller.user, &caller.groups, caller.admin, &meta) {
        return Err(ApiError::forbidden(
            "only admins and approvers of the session's policy may see its recording",
        ));
    }
    let live = route.ends_with("/live");
    let action = if live {
        "recording.watched"
    } else {
        "recording.fetched"
    };
    state.grants.audit_detached(AuditEntry::new(
        &caller.user,
        action,
        &meta.id,
        serde_json::json!({"user": meta.user, "target": meta.target, "kind": meta.kind.as_str()}),
    ));
    let (tx, rx) = mpsc::channel(CHUNKS);
    let mut length = None;
    let ctype = if live {
        tokio::spawn(sse(rec.live(&meta.id), meta.clone(), path, tx));
        "text/event-stream"
    } else {
        // The size now: a recording still being written is sent as far as
        // it was then, with its length declared.
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| ApiError::not_found(format!("the recording cannot be read: {e}")))?;
        let n = f.metadata().await.map(|m| m.len()).unwrap_or(0);
        length = Some(n);
        tokio::spawn(file(f.take(n), tx));
        meta.kind.content_type()
    };
    let mut r = Response::new(Either::Right(ChannelBody(rx)));
    let h = r.headers_mut();
    if let Some(n) = length {
        h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(n));
    }
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// The JSON path's response, in the body type both paths share.
pub fn left(r: Resp) -> Response<AnyBody> {
    r.map(Either::Left)
}

pub fn error_any(e: &ApiError) -> Response<AnyBody> {
    left(error(e))
}

async fn file(mut f: tokio::io::Take<tokio::fs::File>, tx: mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match f.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn event(name: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 24);
    if let Some(n) = name {
        out.extend_from_slice(format!("event: {n}\n").as_bytes());
    }
    // A recording line is one JSON line: no newline inside it.
    out.extend_from_slice(b"data: ");
    out.extend(data.iter().copied().filter(|&b| b != b'\n' && b != b'\r'));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The session's lines from its start, then live ones, then `end`.
async fn sse(
    live: Option<crate::recording::Recording>,
    meta: Meta,
    path: std::path::PathBuf,
    tx: mpsc::Sender<Bytes>,
) {
    // The handle is dropped once subscribed: a watcher must not keep a
    // recording open.
    let subscribed = match live {
        Some(r) => r.watch().await,
        None => None,
    };
    let limit = subscribed.as_ref().map(|(n, _)| *n);
    if let Ok(f) = tokio::fs::File::open(&path).await {
        let reader = tokio::io::BufReader::new(f);
        let mut reader: Box<dyn tokio::io::AsyncBufRead + Unpin + Send> = match limit {
            Some(n) => Box::new(reader.take(n)),
            None => Box::new(reader),
        };
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(event(None, &line)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    if let Some((_, mut rx)) = subscribed {
        let mut sealed = false;
        while let Some(line) = rx.recv().await {
            // The writer's last word at the seal.
            if line.is_empty() {
                sealed = true;
                break;
            }
            if tx.send(event(None, &line)).await.is_err() {
                return;
            }
        }
        // Closed without it: the watcher fell behind and was dropped.
        if !sealed {
            let _ = tx
                .send(event(
                    Some("dropped"),
                    b"{\"reason\":\"the watcher fell behind\"}",
                ))
                .await;
            return;
        }
    }
    let _ = tx
        .send(event(
            Some("end"),
            format!("{{\"session\":\"{}\"}}", meta.id).as_bytes(),
        ))
        .await;
}
