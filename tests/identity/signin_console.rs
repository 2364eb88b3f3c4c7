//! The console's "Sign in with SSO" in a real headless Chromium: the IdP's
//! own login page, back to the console with a one-time code traded for a
//! sign-in token kept in sessionStorage; sign-out ends it at the server.

use crate::common::browser::Browser;
use crate::common::daemon::DAVE;
use serde_json::Value;

#[test]
fn the_console_signs_in_through_the_idp_and_signs_out_at_the_server() {
    let Some((d, _idp)) = crate::start("", &[]) else {
        return;
    };
    // Without [auth.oidc] there is no SSO button: checked on the same
    // console by /auth/info's answer.
    assert_eq!(d.get("/auth/info", None).unwrap().json()["oidc"], true);
    let Some(b) = Browser::start(&d.url()) else {
        return;
    };
    b.goto("/");
    b.wait_js(
        "the SSO button",
        "const a = document.getElementById('sso'); return a && !a.closest('[hidden]')",
        vec![],
    );
    b.click("#sso");
    // The IdP's own page.
    b.wait_js(
        "the IdP's login form",
        "return document.querySelector('input[name=login]') !== null",
        vec![],
    );
    b.type_into("input[name=login]", "alice");
    b.type_into("input[name=password]", "any password");
    b.click("button[type=submit]");
    b.wait_js(
        "the signed-in console",
        "const nav = document.getElementById('nav'); return nav !== null && !nav.hidden && document.querySelector('main h1:not(#signin-title)') !== null",
        vec![],
    );
    assert!(
        b.text("#who-name").contains("alice · admin"),
        "{}",
        b.page_text()
    );
    // The code left the address bar; the token is in this tab only.
    let url = b.js("return location.href", vec![]);
    assert!(!url.as_str().unwrap_or("").contains("code="), "{url}");
    let token = b.js("return sessionStorage.getItem('jitgate.token')", vec![]);
    let token = token.as_str().unwrap_or_default().to_string();
    assert!(token.starts_with("jgs_"), "{token}");
    assert_eq!(d.get("/v1/whoami", Some(&token)).unwrap().status, 200);
    let p = b.js(
        "return document.documentElement.dataset.problems || null",
        vec![],
    );
    assert_eq!(
        p,
        Value::Null,
        "the console reported problems:\n{}",
        b.page_text()
    );

    b.click("#signout");
    b.wait_js(
        "the sign-in page",
        "return document.getElementById('signin-title') !== null",
        vec![],
    );
    assert_eq!(d.get("/v1/whoami", Some(&token)).unwrap().status, 401);
    let audit = d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().json();
    assert!(audit.to_string().contains("auth.signout"), "{audit}");
}
