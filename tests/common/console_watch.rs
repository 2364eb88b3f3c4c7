//! Browser helpers for the console's Watch and Recordings tests.

use super::browser::Browser;
use serde_json::json;

/// Signs in by putting the token where the sign-in form keeps it.
pub fn as_user(b: &Browser, token: &str, hash: &str) {
    b.goto("/");
    b.js(
        "sessionStorage.setItem('jitgate.token', arguments[0]); return true",
        vec![json!(token)],
    );
    b.goto(&format!("/{hash}"));
    // A hash change alone does not load the page again: reload, so it
    // boots with the token.
    b.js("location.reload(); return true", vec![]);
    b.wait_js(
        "the signed-in console",
        "return !document.getElementById('nav').hidden",
        vec![],
    );
    // Every CSP violation from here on is kept for the end of the test.
    b.js(
        "window.cspViolations = []; document.addEventListener('securitypolicyviolation', \
         (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`)); return true",
        vec![],
    );
}

pub fn no_csp_violation(b: &Browser, page: &str) {
    let v = b.js(
        "return [window.cspViolations || ['listener gone'], document.documentElement.dataset.problems || '']",
        vec![],
    );
    assert_eq!(v, json!([[], ""]), "CSP violations or problems on {page}");
}
