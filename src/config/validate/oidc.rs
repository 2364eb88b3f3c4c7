//! `[auth.oidc]`: the issuer and redirect URL are absolute http(s) URLs (the
//! redirect ends in /auth/callback, the route jitgate serves), the client
//! secret's variable is set, the claims and groups are names.

use super::super::locate::{Path, Seg};
use super::{k, p, Checker};
use crate::config::model::FileConfig;
use crate::config::types::{valid_name, OidcConfig};
use std::time::Duration;

fn at(base: &Path, key: &str) -> Path {
    let mut x = base.clone();
    x.push(k(key));
    x
}

pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

pub(super) fn check_oidc(c: &mut Checker, file: &FileConfig) -> Option<OidcConfig> {
    let o = file.auth.oidc.as_ref()?;
    let base = p(&[k("auth"), k("oidc")]);
    let url = |c: &mut Checker, key: &str, v: &str| {
        let ok = (v.starts_with("https://") || v.starts_with("http://"))
            && v.len() <= 2048
            && !v.contains(char::is_whitespace)
            && !v.contains('#');
        if !ok {
            c.err(
                at(&base, key),
                format!("{v:?} is not an absolute http(s) URL without a fragment"),
            );
        }
    };
    url(c, "issuer", &o.issuer);
    url(c, "redirect_url", &o.redirect_url);
    if !o.redirect_url.ends_with("/auth/callback") {
        c.err(
            at(&base, "redirect_url"),
            "redirect_url must be jitgate's own /auth/callback (e.g. https://jitgate.example.com:8080/auth/callback)",
        );
    }
    if o.client_id.trim().is_empty() || o.client_id.len() > 255 {
        c.err(
            at(&base, "client_id"),
            "client_id must be 1 to 255 characters",
        );
    }
    if let Some(var) = &o.client_secret_env {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => {}
            Ok(_) => c.err(
                at(&base, "client_secret_env"),
                format!("environment variable {var} is empty"),
            ),
            Err(_) => c.err(
                at(&base, "client_secret_env"),
                format!("environment variable {var} is not set"),
            ),
        }
    }
    let claim = |c: &mut Checker, key: &str, v: &Option<String>, default: &str| {
        let v = v.clone().unwrap_or_else(|| default.to_string());
        if v.is_empty() || v.len() > 128 {
            c.err(at(&base, key), "a claim name is 1 to 128 characters");
        }
        v
    };
    let username_claim = claim(c, "username_claim", &o.username_claim, "preferred_username");
    let groups_claim = claim(c, "groups_claim", &o.groups_claim, "groups");
    for (i, g) in o.admin_groups.iter().enumerate() {
        if !valid_name(g) {
            let mut path = at(&base, "admin_groups");
            path.push(Seg::Index(i));
            c.err(
                path,
                format!("invalid group name {g:?}: use [a-z0-9][a-z0-9._-]{{0,62}}"),
            );
        }
    }
    let session_ttl = match &o.session_ttl {
        Some(s) => c
            .duration(at(&base, "session_ttl"), s)
            .unwrap_or(DEFAULT_SESSION_TTL),
        None => DEFAULT_SESSION_TTL,
    };
    let ca_file = o
        .ca_file
        .as_ref()
        .map(|f| c.readable_file(at(&base, "ca_file"), f));
    Some(OidcConfig {
        issuer: o.issuer.clone(),
        client_id: o.client_id.clone(),
        client_secret_env: o.client_secret_env.clone(),
        redirect_url: o.redirect_url.clone(),
        username_claim,
        groups_claim,
        admin_groups: o.admin_groups.clone(),
        session_ttl,
        ca_file,
        confirm_cli_login: o.confirm_cli_login,
    })
}
