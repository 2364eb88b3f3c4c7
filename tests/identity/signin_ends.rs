//! What a sign-in carries (user, IdP groups, admin from admin_groups) and
//! how it ends: session_ttl, logout, a lock of the user (which an unlock
//! does not undo).

use crate::common::daemon::DAVE;
use crate::{sign_in, start};
use std::time::{Duration, Instant};

#[test]
fn whoami_shows_the_idp_groups_admin_and_the_end_of_the_signin() {
    // zoe exists only at the IdP: no [[users]] entry, an IdP-only group.
    let users = r#"{"alice": {"preferred_username": "alice", "groups": ["oncall", "jitgate-admins"]},
                    "zoe": {"preferred_username": "zoe", "groups": ["idp-only-sre", "Not A Name"]},
                    "dave": {"preferred_username": "dave", "groups": ["oncall"]}}"#;
    let Some((d, idp)) = start("", &[("IDP_USERS", users)]) else {
        return;
    };
    let alice = sign_in(&d, &idp, "alice");
    let w = d.get("/v1/whoami", Some(&alice)).unwrap().json();
    assert_eq!(w["user"], "alice");
    assert_eq!(w["admin"], true, "{w}");
    assert_eq!(w["via"], "oidc");
    assert!(
        w["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{w}"
    );
    let groups: Vec<&str> = w["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g.as_str())
        .collect();
    assert!(
        groups.contains(&"jitgate-admins") && groups.contains(&"oncall"),
        "{w}"
    );
    // admin_groups made alice an admin: she may lock.
    let r = d
        .post("/v1/users/nobody-here/unlock", Some(&alice), "{}")
        .unwrap();
    assert_ne!(r.status, 403, "{}", r.body);

    // dave is an admin by his static token; signed in through the IdP
    // without an admin group he is not one.
    let dave = sign_in(&d, &idp, "dave");
    let w = d.get("/v1/whoami", Some(&dave)).unwrap().json();
    assert_eq!(
        (w["user"].as_str(), w["admin"].as_bool()),
        (Some("dave"), Some(false)),
        "{w}"
    );
    let r = d
        .post("/v1/users/nobody-here/unlock", Some(&dave), "{}")
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        d.get("/v1/whoami", Some(DAVE)).unwrap().json()["admin"],
        true
    );

    let zoe = sign_in(&d, &idp, "zoe");
    let w = d.get("/v1/whoami", Some(&zoe)).unwrap().json();
    assert_eq!(w["admin"], false, "{w}");
    assert_eq!(w["groups"], serde_json::json!(["idp-only-sre"]), "{w}");
    // The IdP-only group names the policy's requesters: zoe may request and
    // connect (a connect secret for her grant).
    let r = d.create_request(&zoe, "sre-box", "5m");
    let gid = r["grant"]["id"]
        .as_str()
        .expect("auto-approved")
        .to_string();
    let s = d
        .post(&format!("/v1/grants/{gid}/secret"), Some(&zoe), "")
        .unwrap();
    assert_eq!(s.status, 200, "{}", s.body);
    // Not what the IdP did not give her.
    let r = d
        .post(
            "/v1/requests",
            Some(&zoe),
            &serde_json::json!({"target": "cache", "reason": "INC-1"}).to_string(),
        )
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);

    // A static token reads as before, with the new fields.
    let w = d.get("/v1/whoami", Some(DAVE)).unwrap().json();
    assert_eq!(w["via"], "token");
    assert_eq!(w["expires_at"], serde_json::Value::Null);
    let m = d.metrics();
    assert!(m.contains("jitgate_signins_total{result=\"ok\"} 3"), "{m}");
}

#[test]
fn a_signin_ends_at_its_session_ttl() {
    let Some((d, idp)) = start("session_ttl = \"2s\"", &[]) else {
        return;
    };
    let token = sign_in(&d, &idp, "bob");
    assert_eq!(d.get("/v1/whoami", Some(&token)).unwrap().status, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = d.get("/v1/whoami", Some(&token)).unwrap();
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            Instant::now() < deadline,
            "the sign-in outlived its session_ttl"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_lock_ends_every_signin_of_the_user_and_an_unlock_does_not_revive_them() {
    let Some((d, idp)) = start("", &[]) else {
        return;
    };
    let first = sign_in(&d, &idp, "bob");
    let second = sign_in(&d, &idp, "bob");
    let alice = sign_in(&d, &idp, "alice");
    let r = d
        .post(
            "/v1/users/bob/lock",
            Some(DAVE),
            r#"{"reason": "laptop stolen"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    for t in [&first, &second] {
        assert_eq!(d.get("/v1/whoami", Some(t)).unwrap().status, 401);
    }
    assert_eq!(d.get("/v1/whoami", Some(&alice)).unwrap().status, 200);

    // A locked user cannot sign in anew.
    let browser = crate::common::idp::Browser::new();
    let code = crate::console_code(&d, &idp, &browser, "bob");
    let r = crate::exchange(&d, &browser, &code);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("locked"), "{}", r.body);

    let r = d.post("/v1/users/bob/unlock", Some(DAVE), "{}").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    for t in [&first, &second] {
        assert_eq!(d.get("/v1/whoami", Some(t)).unwrap().status, 401);
    }
    let fresh = sign_in(&d, &idp, "bob");
    assert_eq!(d.get("/v1/whoami", Some(&fresh)).unwrap().status, 200);
}

#[test]
fn logout_ends_only_that_signin_and_is_audited() {
    let Some((d, idp)) = start("", &[]) else {
        return;
    };
    let one = sign_in(&d, &idp, "bob");
    let other = sign_in(&d, &idp, "bob");
    let r = d.post("/v1/auth/logout", Some(&one), "{}").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(d.get("/v1/whoami", Some(&one)).unwrap().status, 401);
    assert_eq!(d.get("/v1/whoami", Some(&other)).unwrap().status, 200);
    // A static token has nothing to sign out.
    assert_eq!(
        d.post("/v1/auth/logout", Some(DAVE), "{}").unwrap().status,
        409
    );
    let audit = d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().json();
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"auth.signin"), "{actions:?}");
    assert!(actions.contains(&"auth.signout"), "{actions:?}");
}
