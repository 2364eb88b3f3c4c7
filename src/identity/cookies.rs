//! The sign-in's browser-binding cookies: each holds a random value whose
//! SHA-256 is stored (in the store, so any instance can check it) with the
//! step it binds, is HttpOnly, scoped to the one path that reads it, and
//! Secure when jitgate is reached over https (`redirect_url`).

use crate::config::OidcConfig;

/// Set by GET /auth/login, read by GET /auth/callback only. SameSite=Lax:
/// it must ride the IdP's top-level (cross-site) redirect back.
pub const STATE_COOKIE: &str = "jitgate_signin";
/// Set by the console's callback with its one-time code, read by POST
/// /auth/exchange only. SameSite=Strict: the exchange is always a
/// same-origin fetch from the console's page, never a cross-site request.
pub const EXCHANGE_COOKIE: &str = "jitgate_exchange";
/// Set by the CLI login's confirmation page (GET /auth/login with
/// cli_port, when `confirm_cli_login` is on), read by its form's POST /auth/login only. SameSite=Strict:
/// the form posts from the page itself, so another site's form cannot
/// carry it.
pub const CONFIRM_COOKIE: &str = "jitgate_cli_confirm";

/// One `Set-Cookie` value; an empty `value` with max age 0 clears it.
pub fn set_cookie(
    oidc: &OidcConfig,
    name: &str,
    value: &str,
    path: &str,
    max_age_s: i64,
    same_site: &str,
) -> String {
    let secure = if oidc.redirect_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age_s}; HttpOnly; SameSite={same_site}{secure}"
    )
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie_value<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Whether cookie `name` is present and its SHA-256 (hex) is `stored`,
/// compared in constant time (digests of both, so lengths do not leak).
pub fn bound_to(header: Option<&str>, name: &str, stored: &str) -> bool {
    let presented = cookie_value(header, name).unwrap_or_default();
    let equal = crate::secrets::digest_eq(
        &crate::secrets::sha256(crate::secrets::sha256_hex(presented).as_bytes()),
        &crate::secrets::sha256(stored.as_bytes()),
    );
    !presented.is_empty() && equal
}
