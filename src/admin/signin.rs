//! The sign-in routes, without a bearer token: GET /auth/info (whether SSO
//! is on, for the console), GET /auth/login (to the IdP; with
//! `confirm_cli_login`, the CLI's shows a confirmation page whose form
//! POSTs to /auth/login),
//! GET /auth/callback (HTML pages a person reads), POST /auth/exchange
//! (JSON). Each request spends the source's /auth budget first.

use super::error::ApiError;
use super::http::{json, json_body, query_pairs, Resp};
use super::signin_page::{html_escape, no_store};
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
        (&Method::POST, "/auth/login") => "/auth/login",
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
    let cookies = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if req.method() == Method::POST && route == "/auth/login" {
        let out = match form_body(req).await {
            Ok(form) => match form.iter().find(|(k, _)| k == "confirm") {
                Some((_, confirm)) => id
                    .cli_confirmed(&cfg, confirm, cookies.as_deref())
                    .await
                    .map(|(s, clear)| {
                        // 303: the browser follows a form's answer with a GET.
                        let mut r = redirect(&s.idp_url, &[&s.set_cookie, &clear]);
                        *r.status_mut() = StatusCode::SEE_OTHER;
                        r
                    }),
                None => Err(FlowError::BadRequest("the form has no confirm".into())),
            },
            Err(e) => return Ok((route, Err(e))),
        };
        return Ok((
            route,
            Ok(out.unwrap_or_else(|e| failure(route, &id.failed(e, "")))),
        ));
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
            // `confirm_cli_login` on: the CLI's GET shows the confirmation
            // page; off (SPEC's flow), it goes to the IdP as the console's.
            let confirm = cfg.oidc.as_ref().is_some_and(|o| o.confirm_cli_login);
            match cli {
                Ok(Some((port, challenge))) if confirm => id
                    .cli_confirm_page(&cfg, port, challenge)
                    .await
                    .map(|p| super::signin_page::confirm(&p)),
                Ok(cli) => id
                    .login(&cfg, cli)
                    .await
                    .map(|s| redirect(&s.idp_url, &[&s.set_cookie])),
                Err(e) => Err(e),
            }
        }
        "/auth/callback" => id
            .callback(&cfg, &params, cookies.as_deref())
            .await
            .map(|d| {
                let cookies: Vec<&str> = d.set_cookies.iter().map(String::as_str).collect();
                redirect(&d.location, &cookies)
            }),
        _ => {
            let body: ExchangeBody = match json_body(req).await {
                Ok(b) => b,
                Err(e) => return Ok((route, Err(e))),
            };
            let out = id
                .exchange(
                    &cfg,
                    &body.code,
                    body.cli_verifier.as_deref(),
                    cookies.as_deref(),
                )
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
                });
            // The exchange cookie is cleared once its code is traded. A
            // refused code (another browser's) leaves it: this browser's
            // own sign-in, if one is under way, still completes.
            let traded = out.is_ok();
            let mut resp = out.unwrap_or_else(|e| failure(route, &id.failed(e, "")));
            if let Some(oidc) = cfg.oidc.as_ref().filter(|_| traded) {
                let clear = crate::identity::flow::exchange_cookie(oidc, "", 0);
                if let Ok(v) = HeaderValue::from_str(&clear) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            return Ok((route, Ok(resp)));
        }
    };
    Ok((
        route,
        Ok(out.unwrap_or_else(|e| failure(route, &id.failed(e, "")))),
    ))
}

/// A form post's fields (application/x-www-form-urlencoded), at most 4 KiB.
async fn form_body(req: Request<Incoming>) -> Result<Vec<(String, String)>, ApiError> {
    use http_body_util::{BodyExt, Limited};
    let body = Limited::new(req.into_body(), 4096)
        .collect()
        .await
        .map_err(|_| ApiError::bad_request("the form is unreadable or over 4 KiB"))?
        .to_bytes();
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the form is not UTF-8"))?;
    query_pairs(Some(text))
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

fn redirect(location: &str, cookies: &[&str]) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    no_store(&mut r);
    r
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
