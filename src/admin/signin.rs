//! The sign-in routes, without a bearer token: GET /auth/info (whether SSO
//! is on, for the console), GET /auth/login, GET /auth/callback (HTML pages
//! a person reads), POST /auth/exchange (JSON). Each request spends the
//! source's /auth budget first.

use super::error::ApiError;
use super::http::{json, json_body, query_pairs, Resp};
use super::AdminState;
use crate::identity::FlowError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeBody {
    code: String,
    cli_verifier: Option<String>,
}

/// Routes /auth/*; None when the path is not one of them.
pub async fn route(
    state: &Arc<AdminState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<(&'static str, Result<Resp, ApiError>), Request<Incoming>> {
    let path = req.uri().path().to_string();
    let route: &'static str = match (req.method(), path.as_str()) {
        (&Method::GET, "/auth/info") => "/auth/info",
        (&Method::GET, "/auth/login") => "/auth/login",
        (&Method::GET, "/auth/callback") => "/auth/callback",
        (&Method::POST, "/auth/exchange") => "/auth/exchange",
        _ => return Err(req),
    };
    let cfg = state.grants.config_now();
    let id = &state.identity;
    if route == "/auth/info" {
        let body = serde_json::json!({"oidc": cfg.oidc.is_some()});
        return Ok((route, Ok(json(StatusCode::OK, &body))));
    }
    if let Err(e) = id.admit(peer.ip()) {
        let e = id.failed(e, "");
        return Ok((route, Ok(failure(route, &e))));
    }
    let query = req.uri().query().map(str::to_string);
    let params = match query_pairs(query.as_deref()) {
        Ok(p) => p,
        Err(e) => return Ok((route, Err(e))),
    };
    let out = match route {
        "/auth/login" => {
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let cli = match (get("cli_port"), get("cli_challenge")) {
                (None, None) => Ok(None),
                (Some(p), Some(c)) => match p.parse::<u16>() {
                    Ok(p) => Ok(Some((p, c))),
                    Err(_) => Err(FlowError::BadRequest(
                        "cli_port must be a port number".into(),
                    )),
                },
                _ => Err(FlowError::BadRequest(
                    "cli_port and cli_challenge go together".into(),
                )),
            };
            match cli {
                Ok(cli) => id
                    .login(&cfg, cli)
                    .await
                    .map(|s| redirect(&s.idp_url, Some(&s.set_cookie))),
                Err(e) => Err(e),
            }
        }
        "/auth/callback" => {
            let cookies = req
                .headers()
                .get(header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            id.callback(&cfg, &params, cookies.as_deref())
                .await
                .map(|d| redirect(&d.location, Some(&d.clear_cookie)))
        }
        _ => {
            let body: ExchangeBody = match json_body(req).await {
                Ok(b) => b,
                Err(e) => return Ok((route, Err(e))),
            };
            id.exchange(&cfg, &body.code, body.cli_verifier.as_deref())
                .await
                .map(|x| {
                    json(
                        StatusCode::OK,
                        &serde_json::json!({
                            "token": x.token,
                            "user": x.user,
                            "expires_at": crate::clock::rfc3339(x.expires_at_ms),
                        }),
                    )
                })
        }
    };
    Ok((
        route,
        Ok(out.unwrap_or_else(|e| failure(route, &id.failed(e, "")))),
    ))
}

fn status_of(e: &FlowError) -> (StatusCode, &'static str) {
    match e {
        FlowError::NotConfigured => (StatusCode::NOT_FOUND, "not_found"),
        FlowError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid"),
        FlowError::Denied { .. } => (StatusCode::FORBIDDEN, "signin_refused"),
        FlowError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        FlowError::Idp(_) => (StatusCode::BAD_GATEWAY, "idp_error"),
        FlowError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

/// JSON for the exchange (a program reads it), a page for the browser routes.
fn failure(route: &str, e: &FlowError) -> Resp {
    let (status, code) = status_of(e);
    if route == "/auth/exchange" {
        return super::http::error(&ApiError::new(status, code, e.to_string()));
    }
    page(status, "Sign-in failed", &e.to_string())
}

fn redirect(location: &str, cookie: Option<&str>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    no_store(&mut r);
    r
}

fn no_store(r: &mut Resp) {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// A plain page with no script; every text HTML-escaped.
fn page(status: StatusCode, title: &str, message: &str) -> Resp {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} - jitgate</title></head>\
         <body><main><h1>{t}</h1><p>{m}</p><p><a href=\"/\">Back to the console</a></p></main></body></html>",
        t = html_escape(title),
        m = html_escape(message)
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::console::CSP),
    );
    no_store(&mut r);
    r
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
