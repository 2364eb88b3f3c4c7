//! The CLI login's confirmation page (GET /auth/login?cli_port=... with
//! `[auth.oidc] confirm_cli_login` on): a
//! plain page with no script, every text escaped, the console's CSP except
//! that its one form may post to /auth/login and the answer may redirect
//! to the IdP (`form-action` also governs a form's redirects), still never
//! framed, so another site can neither read it nor trick a click on it.

use super::http::Resp;
use crate::identity::confirm::ConfirmPage;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// The page with its form, the confirmation cookie and its CSP.
pub fn confirm(p: &ConfirmPage) -> Resp {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Sign in from the command line - jitgate</title></head>\
         <body><main><h1>Sign in to jitgate from the command line on this computer?</h1>\
         <p>A program on this computer, listening on port {port}, asked to be signed in as you. \
         Continue only if you just ran <code>jitgate login</code> yourself.</p>\
         <form method=\"post\" action=\"/auth/login\">\
         <input type=\"hidden\" name=\"confirm\" value=\"{confirm}\">\
         <button type=\"submit\">Sign in from the command line (port {port})</button></form>\
         <p><a href=\"/\">Cancel</a></p></main></body></html>",
        port = p.cli_port,
        confirm = html_escape(&p.confirm),
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let csp = super::console::CSP.replace(
        "form-action 'none'",
        &format!("form-action 'self' {}", p.idp_origin),
    );
    // The origin is scheme://host[:port] from the IdP's metadata; should it
    // not fit a header, the page goes out with no form target allowed.
    let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(super::console::CSP));
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    if let Ok(v) = HeaderValue::from_str(&p.set_cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    no_store(&mut r);
    r
}

/// Sign-in answers carry tokens or codes: never cached, never sent on as a referrer.
pub(super) fn no_store(r: &mut Resp) {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

pub(super) fn html_escape(s: &str) -> String {
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
