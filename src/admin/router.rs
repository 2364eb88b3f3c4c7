//! Routing by method and path segments; authentication; the per-request
//! timeout; and the admin_requests_total metric labelled by route pattern.
//! The web console's static files (`/`, `/console/...`) need no token.

use super::error::ApiError;
use super::handlers::{self as h, Ctx};
use super::http::{error, text, Resp};
use super::recordings::{self, AnyBody};
use super::{AdminState, REQUEST_TIMEOUT};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub async fn handle(
    state: Arc<AdminState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<AnyBody>, Infallible> {
    let grants = state.grants.clone();
    // The streaming routes answer with a body fed by a task, outside the
    // request timeout (which bounds producing the head, not the stream).
    if let Some((route, id)) = streaming_route(&req) {
        let r =
            tokio::time::timeout(REQUEST_TIMEOUT, recordings::serve(state, route, id, req)).await;
        let resp = match r {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => recordings::error_any(&e),
            Err(_) => recordings::error_any(&ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took too long",
            )),
        };
        if resp.status() != StatusCode::UNAUTHORIZED {
            grants.count_admin_request(route, resp.status().as_str());
        }
        return Ok(resp);
    }
    let (route, result) =
        match tokio::time::timeout(REQUEST_TIMEOUT, dispatch(state, peer, req)).await {
            Ok(x) => x,
            Err(_) => (
                "timeout",
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took too long",
                )),
            ),
        };
    let resp = result.unwrap_or_else(|e| error(&e));
    if route != UNAUTHENTICATED {
        grants.count_admin_request(route, resp.status().as_str());
    }
    Ok(recordings::left(resp))
}

type Out = (&'static str, Result<Resp, ApiError>);

/// The routes whose body streams (`recordings`); their session id.
fn streaming_route(req: &Request<Incoming>) -> Option<(&'static str, String)> {
    let segs: Vec<&str> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    match (req.method(), segs.as_slice()) {
        (&Method::GET, ["v1", "sessions", id, "recording"]) => {
            Some(("/v1/sessions/{id}/recording", id.to_string()))
        }
        (&Method::GET, ["v1", "sessions", id, "live"]) => {
            Some(("/v1/sessions/{id}/live", id.to_string()))
        }
        _ => None,
    }
}

/// Not a route: a request refused before routing is counted in
/// jitgate_admin_unauthenticated_total instead of admin_requests_total.
const UNAUTHENTICATED: &str = "";

async fn dispatch(state: Arc<AdminState>, peer: SocketAddr, req: Request<Incoming>) -> Out {
    let req = if req.uri().path().starts_with("/auth/") {
        match super::signin::route(&state, peer, req).await {
            Ok(out) => return out,
            Err(req) => req,
        }
    } else {
        req
    };
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let method = req.method().clone();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    if method == Method::GET || method == Method::HEAD {
        let inm = req
            .headers()
            .get(hyper::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok());
        if let Some((route, resp)) = super::console::response(&path, inm) {
            return (route, Ok(resp));
        }
    }
    match (&method, segs.as_slice()) {
        (&Method::GET, ["healthz"]) => return ("/healthz", Ok(text(StatusCode::OK, "ok"))),
        (&Method::GET, ["readyz"]) => return ("/readyz", Ok(readyz(&state).await)),
        _ => {}
    }
    if segs.first() != Some(&"v1") {
        return (
            "other",
            Err(ApiError::not_found(format!("no route for {method} {path}"))),
        );
    }
    let cfg = state.grants.config_now();
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = match super::auth::authenticate(&cfg, &state.identity, auth).await {
        Ok(c) => c,
        // A sign-in token cannot be checked without the store: fail closed.
        Err(e) => {
            tracing::warn!(error = %e, "cannot check a sign-in token");
            state.grants.count_unauthenticated("bad_token");
            return (
                UNAUTHENTICATED,
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store is unavailable, so sign-in tokens cannot be checked; retry",
                )),
            );
        }
    };
    let Some(caller) = caller else {
        let reason = if auth.is_some() {
            "bad_token"
        } else {
            "missing_token"
        };
        state.grants.count_unauthenticated(reason);
        return (UNAUTHENTICATED, Err(ApiError::unauthorized()));
    };
    let ctx = Ctx { state, caller, cfg };
    let q = query.as_deref();
    use Method as M;
    match (&method, &segs[1..]) {
        (&M::GET, ["whoami"]) => ("/v1/whoami", h::system::whoami(ctx).await),
        (&M::POST, ["auth", "logout"]) => ("/v1/auth/logout", h::system::logout(ctx, req).await),
        (&M::GET, ["targets"]) => ("/v1/targets", h::targets::list(ctx).await),
        (&M::POST, ["ssh", "certificate"]) => {
            ("/v1/ssh/certificate", h::ssh::certificate(ctx, req).await)
        }
        (&M::POST, ["requests"]) => ("/v1/requests", h::requests::create(ctx, req).await),
        (&M::GET, ["requests"]) => ("/v1/requests", h::requests::list(ctx, q).await),
        (&M::GET, ["requests", id]) => ("/v1/requests/{id}", h::requests::get(ctx, id).await),
        (&M::POST, ["requests", id, "approve"]) => (
            "/v1/requests/{id}/approve",
            h::requests::approve(ctx, id, req).await,
        ),
        (&M::POST, ["requests", id, "deny"]) => (
            "/v1/requests/{id}/deny",
            h::requests::deny(ctx, id, req).await,
        ),
        (&M::POST, ["requests", id, "cancel"]) => (
            "/v1/requests/{id}/cancel",
            h::requests::cancel(ctx, id, req).await,
        ),
        (&M::GET, ["grants"]) => ("/v1/grants", h::grants::list(ctx, q).await),
        (&M::GET, ["grants", id]) => ("/v1/grants/{id}", h::grants::get(ctx, id).await),
        (&M::POST, ["grants", id, "secret"]) => (
            "/v1/grants/{id}/secret",
            h::grants::secret(ctx, id, req).await,
        ),
        (&M::POST, ["grants", id, "revoke"]) => (
            "/v1/grants/{id}/revoke",
            h::grants::revoke(ctx, id, req).await,
        ),
        (&M::POST, ["grants", id, "extend"]) => (
            "/v1/grants/{id}/extend",
            h::grants::extend(ctx, id, req).await,
        ),
        (&M::POST, ["grants", id, "review"]) => (
            "/v1/grants/{id}/review",
            h::grants::review(ctx, id, req).await,
        ),
        (&M::GET, ["sessions"]) => ("/v1/sessions", h::sessions::list(ctx, q).await),
        (&M::GET, ["recordings"]) => ("/v1/recordings", recordings::list(ctx, q).await),
        (&M::POST, ["sessions", id, "terminate"]) => (
            "/v1/sessions/{id}/terminate",
            h::sessions::terminate(ctx, id, req).await,
        ),
        (&M::POST, ["users", name, "lock"]) => (
            "/v1/users/{name}/lock",
            h::users::lock(ctx, name, req).await,
        ),
        (&M::POST, ["users", name, "unlock"]) => (
            "/v1/users/{name}/unlock",
            h::users::unlock(ctx, name, req).await,
        ),
        (&M::GET, ["audit"]) => ("/v1/audit", h::audit::list(ctx, q).await),
        (&M::GET, ["audit", "verify"]) => ("/v1/audit/verify", h::audit::verify(ctx).await),
        (&M::GET, ["audit", "checkpoints"]) => {
            ("/v1/audit/checkpoints", h::audit::checkpoints(ctx, q).await)
        }
        (&M::GET, ["audit", "public-key"]) => {
            ("/v1/audit/public-key", h::audit::public_key(ctx).await)
        }
        (&M::POST, ["admin", "reload"]) => ("/v1/admin/reload", h::system::reload(ctx).await),
        _ => (
            "other",
            Err(ApiError::not_found(format!("no route for {method} {path}"))),
        ),
    }
}

async fn readyz(state: &AdminState) -> Resp {
    let listeners = state.listeners_up.load(Ordering::Acquire);
    let store = state
        .grants
        .store_ready(std::time::Duration::from_secs(2))
        .await;
    match (listeners, store) {
        (true, true) => text(StatusCode::OK, "ready"),
        (false, _) => text(StatusCode::SERVICE_UNAVAILABLE, "listeners not up"),
        (_, false) => text(StatusCode::SERVICE_UNAVAILABLE, "store unavailable"),
    }
}
