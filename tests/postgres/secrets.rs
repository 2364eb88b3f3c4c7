//! Connect secrets: issuing one does not revoke the grant's earlier ones (a
//! second terminal must not break the first one's psql), `--rotate` does,
//! and a grant holds a bounded number. Real psql through the proxy, the real
//! CLI.

use crate::common;

use common::daemon::*;
use common::pgproxy::*;

fn psql_ok(p: &PgProxy, secret: &str) -> bool {
    let out = p.psql("bob@auto-db", secret, "SELECT 41 + 1");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("42")
}

fn issue(p: &PgProxy, gid: &str, body: &str) -> (u16, serde_json::Value) {
    let r =
        p.d.post(&format!("/v1/grants/{gid}/secret"), Some(BOB), body)
            .unwrap();
    (r.status, serde_json::from_str(&r.body).unwrap_or_default())
}

#[test]
fn a_second_secret_leaves_the_first_valid_and_rotate_revokes_them() {
    let Some(p) = PgProxy::start() else {
        return;
    };
    let (gid, first) = bob_grant(&p);
    // The second terminal, through the real CLI.
    let out = p.d.cli(BOB, &["secret", &gid]);
    assert!(out.status.success(), "{out:?}");
    let second = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("2 valid secret(s)") && note.contains("earlier ones still work"),
        "{note}"
    );
    assert_ne!(first, second);
    assert!(psql_ok(&p, &first), "the first secret stopped working");
    assert!(psql_ok(&p, &second), "the second secret does not work");

    let out = p.d.cli(BOB, &["secret", &gid, "--rotate"]);
    assert!(out.status.success(), "{out:?}");
    let rotated = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(String::from_utf8_lossy(&out.stderr).contains("were revoked"));
    assert!(!psql_ok(&p, &first), "a rotated-out secret still works");
    assert!(!psql_ok(&p, &second), "a rotated-out secret still works");
    assert!(psql_ok(&p, &rotated));
}

#[test]
fn a_grant_holds_a_bounded_number_of_secrets() {
    let Some(p) = PgProxy::start() else {
        return;
    };
    let (gid, _) = bob_grant(&p);
    let max = jitgate::grants::MAX_SECRETS_PER_GRANT;
    let mut last = String::new();
    for n in 2..=max {
        let (st, v) = issue(&p, &gid, "");
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["secrets_valid"], n, "{v}");
        last = v["secret"].as_str().unwrap().to_string();
    }
    let (st, v) = issue(&p, &gid, "{}");
    assert_eq!(st, 409, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("--rotate"), "{msg}");
    // The newest of the bounded set works (same salt as the grant's first).
    assert!(psql_ok(&p, &last));
    let (st, v) = issue(&p, &gid, r#"{"rotate": true}"#);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["secrets_valid"], 1, "{v}");
    let (st, _) = issue(&p, &gid, r#"{"rotate": "yes"}"#);
    assert_eq!(st, 400);
}
