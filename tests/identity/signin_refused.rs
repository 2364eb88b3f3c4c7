//! Every way the sign-in flow refuses: a name the pattern refuses, a forged
//! or replayed state, a state completed in another browser, a replayed code,
//! a CLI code without its verifier, an ID token signed by a key the IdP does
//! not publish; and an IdP that rotated its key is followed, not refused.

use crate::common::idp::Browser;
use crate::{console_code, exchange, sign_in, start};
use jitgate::identity::rate::PER_WINDOW;

fn audit_has(d: &crate::common::daemon::Daemon, action: &str, needle: &str) -> bool {
    let r = d
        .get("/v1/audit?limit=1000", Some(crate::common::daemon::DAVE))
        .expect("audit");
    r.json()["events"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["action"] == action && e.to_string().contains(needle))
}

/// The audit write is asynchronous: wait (bounded) for the event.
fn assert_audited(d: &crate::common::daemon::Daemon, action: &str, needle: &str) {
    crate::common::tunnel::wait_for(&format!("{action} ({needle}) in the audit"), || {
        audit_has(d, action, needle)
    });
}

#[test]
fn a_name_the_pattern_refuses_gets_a_clear_page_and_no_code() {
    let Some((d, idp)) = start("", &[]) else {
        return;
    };
    let b = Browser::new();
    let callback = b.sign_in_at_idp(&format!("{}/auth/login", d.url()), &idp, "badname");
    let hop = b.get(&callback);
    assert_eq!(hop.status, 403, "{hop:?}");
    assert!(hop.location.is_none(), "{hop:?}");
    assert!(hop.body.contains("Sign-in failed"), "{}", hop.body);
    assert!(hop.body.contains("Bad Name"), "{}", hop.body);
    assert!(
        hop.body.contains("not a valid jitgate name"),
        "{}",
        hop.body
    );
    assert_audited(&d, "auth.failed", "bad_username");
    assert!(
        d.metrics()
            .contains("jitgate_signins_total{result=\"denied\"} 1"),
        "{}",
        d.metrics()
    );
}

#[test]
fn forged_replayed_and_foreign_states_are_refused() {
    let Some((d, idp)) = start("", &[]) else {
        return;
    };
    // A state jitgate never issued.
    let b = Browser::new();
    let hop = b.get(&format!("{}/auth/callback?code=abc&state=forged", d.url()));
    assert_eq!(hop.status, 403, "{hop:?}");
    assert!(
        hop.body.contains("unknown or was already used"),
        "{}",
        hop.body
    );

    // Started in browser A, completed in browser B (the victim's): refused,
    // and the state is spent, so A cannot finish it either.
    let a = Browser::new();
    let callback = a.sign_in_at_idp(&format!("{}/auth/login", d.url()), &idp, "alice");
    let victim = Browser::new();
    let hop = victim.get(&callback);
    assert_eq!(hop.status, 403, "{hop:?}");
    assert!(hop.body.contains("another browser"), "{}", hop.body);
    let hop = a.get(&callback);
    assert_eq!(hop.status, 403, "{hop:?}");

    // A state used once is refused the second time.
    let a = Browser::new();
    let callback = a.sign_in_at_idp(&format!("{}/auth/login", d.url()), &idp, "alice");
    assert_eq!(a.get(&callback).status, 302);
    let hop = a.get(&callback);
    assert_eq!(hop.status, 403, "{hop:?}");
    assert!(hop.body.contains("already used"), "{}", hop.body);
    assert_audited(&d, "auth.failed", "browser_mismatch");
    assert_audited(&d, "auth.failed", "bad_state");
}

#[test]
fn a_code_works_once_and_a_cli_code_needs_its_verifier() {
    let Some((d, idp)) = start("", &[]) else {
        return;
    };
    let browser = Browser::new();
    let code = console_code(&d, &idp, &browser, "alice");
    assert_eq!(exchange(&d, &browser, &code).status, 200);
    let again = exchange(&d, &browser, &code);
    assert_eq!(again.status, 403, "{}", again.body);
    assert!(again.body.contains("already used"), "{}", again.body);

    // A CLI login: the code goes to the loopback port; without the verifier
    // matching the challenge it buys nothing.
    let verifier = "v".repeat(43);
    let challenge = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(jitgate::secrets::sha256(verifier.as_bytes()))
    };
    let b = Browser::new();
    let start = format!(
        "{}/auth/login?cli_port=9&cli_challenge={challenge}",
        d.url()
    );
    let callback = b.sign_in_at_idp(&start, &idp, "alice");
    let hop = b.get(&callback);
    let loc = hop.location.expect("loopback redirect");
    assert!(
        loc.starts_with("http://127.0.0.1:9/callback?code="),
        "{loc}"
    );
    let code = loc.split_once("code=").map(|x| x.1).unwrap_or_default();
    let body = |v: Option<&str>| {
        let mut j = serde_json::json!({ "code": code });
        if let Some(v) = v {
            j["cli_verifier"] = v.into();
        }
        j.to_string()
    };
    let wrong = d
        .post("/auth/exchange", None, &body(Some(&"w".repeat(43))))
        .unwrap();
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    // The wrong verifier spent the code too.
    let right = d
        .post("/auth/exchange", None, &body(Some(&verifier)))
        .unwrap();
    assert_eq!(right.status, 403, "{}", right.body);

    let callback = b.sign_in_at_idp(&start, &idp, "alice");
    let loc = b.get(&callback).location.expect("loopback redirect");
    let code = loc
        .split_once("code=")
        .map(|x| x.1)
        .unwrap_or_default()
        .to_string();
    let none = d
        .post(
            "/auth/exchange",
            None,
            &serde_json::json!({ "code": code }).to_string(),
        )
        .unwrap();
    assert_eq!(none.status, 403, "{}", none.body);
    assert!(none.body.contains("cli_verifier"), "{}", none.body);

    let callback = b.sign_in_at_idp(&start, &idp, "alice");
    let loc = b.get(&callback).location.expect("loopback redirect");
    let code = loc
        .split_once("code=")
        .map(|x| x.1)
        .unwrap_or_default()
        .to_string();
    let ok = d
        .post(
            "/auth/exchange",
            None,
            &serde_json::json!({ "code": code, "cli_verifier": verifier }).to_string(),
        )
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn an_id_token_signed_by_a_key_the_idp_does_not_publish_is_refused() {
    for mode in ["same-kid", "other-kid"] {
        let Some((d, idp)) = start("", &[("IDP_PUBLISH_OTHER_KEY", mode)]) else {
            return;
        };
        let b = Browser::new();
        let callback = b.sign_in_at_idp(&format!("{}/auth/login", d.url()), &idp, "alice");
        let hop = b.get(&callback);
        assert_eq!(hop.status, 403, "{mode}: {hop:?}");
        assert!(
            hop.body.contains("ID token was refused"),
            "{mode}: {}",
            hop.body
        );
        assert_audited(&d, "auth.failed", "bad_id_token");
    }
}

#[test]
fn an_idp_that_rotated_its_signing_key_is_followed() {
    let Some((d, mut idp)) = start("", &[]) else {
        return;
    };
    sign_in(&d, &idp, "alice");
    // A new key, unknown to jitgate's cached key set: one refetch finds it.
    idp.restart();
    let token = sign_in(&d, &idp, "alice");
    let r = d.get("/v1/whoami", Some(&token)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn one_source_gets_a_bounded_number_of_signin_requests() {
    let Some((d, _idp)) = start("", &[]) else {
        return;
    };
    let limit = PER_WINDOW;
    for _ in 0..limit {
        let r = d.get("/auth/callback?code=x&state=forged", None).unwrap();
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let r = d.get("/auth/callback?code=x&state=forged", None).unwrap();
    assert_eq!(r.status, 429, "{}", r.body);
    let r = d.post("/auth/exchange", None, r#"{"code": "x"}"#).unwrap();
    assert_eq!(r.status, 429, "{}", r.body);
    // The API itself is not part of that budget.
    assert_eq!(
        d.get("/v1/whoami", Some(crate::common::daemon::DAVE))
            .unwrap()
            .status,
        200
    );
}
