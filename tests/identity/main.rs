//! Sign-in through a real OpenID provider (panva/oidc-provider, started by
//! the tests): the CLI's loopback flow, the console's flow, groups and admin
//! from the IdP, and every way a sign-in is refused or ends.

#[path = "../common/mod.rs"]
mod common;

mod signin_bound;
mod signin_cli;
mod signin_cli_confirm;
mod signin_cli_direct;
mod signin_console;
mod signin_ends;
mod signin_postgres;
mod signin_refused;
mod signin_store_down;
mod signin_use;
mod walkthrough;

use common::daemon::Daemon;
use common::idp::{Browser, Idp};

/// A target only the IdP-defined group `idp-only-sre` may request (bob is in
/// it at the IdP, nowhere in the config), auto-approved.
pub const IDP_GROUP_POLICY: &str = r#"
[[targets]]
name = "sre-box"
kind = "tcp"
address = "127.0.0.1:6390"

[[policies]]
name = "sre"
requesters = ["group:idp-only-sre"]
targets = ["sre-*"]
approvals_required = 0
max_duration = "10m"
"#;

/// The daemon on the base config plus `IDP_GROUP_POLICY`, with `[auth.oidc]`
/// pointing at a fresh IdP (`oidc_extra`: more keys for that section, e.g.
/// `session_ttl`). None when the IdP cannot run here (skipped).
pub fn start(oidc_extra: &str, idp_env: &[(&str, &str)]) -> Option<(Daemon, Idp)> {
    start_with("", oidc_extra, idp_env)
}

/// `start` with `extra` config (listeners, targets) after `IDP_GROUP_POLICY`.
pub fn start_with(
    extra: &str,
    oidc_extra: &str,
    idp_env: &[(&str, &str)],
) -> Option<(Daemon, Idp)> {
    let mut d = Daemon::configured(None, "", &format!("{IDP_GROUP_POLICY}{extra}"));
    let redirect = format!("{}/auth/callback", d.url());
    let idp = Idp::start_with_env(&redirect, idp_env)?;
    let mut cfg = std::fs::read_to_string(&d.config).expect("config");
    cfg.push_str(&idp.oidc_section(oidc_extra));
    std::fs::write(&d.config, cfg).expect("config");
    d.spawn();
    Some((d, idp))
}

/// The console's flow over HTTP as `login`: /auth/login, the IdP's form,
/// the callback; returns the one-time code from the `/#code=` redirect.
pub fn console_code(d: &Daemon, idp: &Idp, browser: &Browser, login: &str) -> String {
    let callback = browser.sign_in_at_idp(&format!("{}/auth/login", d.url()), idp, login);
    let hop = browser.get(&callback);
    assert_eq!(hop.status, 302, "{hop:?}");
    let loc = hop.location.unwrap_or_default();
    loc.split_once("/#code=")
        .map(|(_, c)| c.to_string())
        .unwrap_or_else(|| panic!("no code in the callback's redirect: {loc}"))
}

/// POST /auth/exchange {"code"} from `browser` (the console's fetch, with
/// that browser's exchange cookie).
pub fn exchange(d: &Daemon, browser: &Browser, code: &str) -> common::idp::Hop {
    browser.post_json(
        &format!("{}/auth/exchange", d.url()),
        &serde_json::json!({ "code": code }).to_string(),
    )
}

/// The JSON of an exchange's answer.
pub fn json_of(hop: &common::idp::Hop) -> serde_json::Value {
    serde_json::from_str(&hop.body).unwrap_or_else(|e| panic!("{e}: {hop:?}"))
}

/// A sign-in token for `login` through the console's flow.
pub fn sign_in(d: &Daemon, idp: &Idp, login: &str) -> String {
    let browser = Browser::new();
    let code = console_code(d, idp, &browser, login);
    let r = exchange(d, &browser, &code);
    assert_eq!(r.status, 200, "{}", r.body);
    let token = json_of(&r)["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("jgs_"), "{token}");
    token
}
