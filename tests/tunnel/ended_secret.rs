//! A grant's connect secrets die with it, but a client that presents one
//! afterwards is told why the grant ended (revoked by whom, expired), not
//! that its secret is not valid: `jitgate connect` notices a revoke on a
//! new local connection before its next re-check and prints the reason.

use crate::common;

use common::daemon::*;
use common::tunnel::*;
use std::io::Read;

#[test]
fn connect_reports_a_revoke_noticed_on_a_new_local_connection() {
    let t = Tunnel::start();
    let (gid, secret) = t.grant(BOB, "auto-echo", "5m");
    let mut c = t.connect("auto-echo", &secret);
    let mut s = c.open();
    echo(&mut s, b"before");
    drop(s);
    // Until the daemon has seen that session end, a revoke would reach
    // connect as that session's farewell instead, and connect would be gone
    // before the new local connection this test is about.
    wait_for("the first session to end", || t.live_sessions() == 0);
    let r =
        t.d.post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(DAVE),
            r#"{"reason":"INC-9 closed"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // connect re-checks its grant every 30 s: this new connection is what
    // finds the revoke.
    let mut s = c.open();
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    assert_eq!(c.wait_exit(), Some(1));
    let want = format!(
        "access to auto-echo refused: grant {gid} has ended: grant revoked by dave (INC-9 closed)"
    );
    assert!(c.said().contains(&want), "{}", c.said());
    assert!(!c.said().contains("not valid"), "{}", c.said());
    // A connect started afterwards says the same before it listens.
    let mut again = t.connect_with("auto-echo", &secret, &t.fingerprint, t.port);
    assert_eq!(again.wait_exit(), Some(1));
    assert!(again.said().contains(&want), "{}", again.said());
}

#[test]
fn an_expired_grants_secret_says_it_expired() {
    let t = Tunnel::start();
    // Long enough to connect and relay before the end on a loaded machine.
    let (gid, secret) = t.grant(BOB, "auto-echo", "10s");
    let (mut s, r) = t.raw("auto-echo", &secret);
    assert_eq!(r.status, OK, "{r:?}");
    echo(&mut s, b"in time");
    assert!(closed_by_peer(&mut s), "the session outlived its grant");
    // Once the grant's timer has ended it (its state says so), the secret
    // is retired, and still recognised.
    wait_for("the grant to be expired", || {
        t.d.get(&format!("/v1/grants/{gid}"), Some(BOB))
            .unwrap()
            .json()["state"]
            == "expired"
    });
    let (_, r) = t.raw("auto-echo", &secret);
    assert_eq!(r.status, NO_GRANT, "{r:?}");
    assert!(
        r.message
            .contains(&format!("grant {gid} has ended: grant expired")),
        "{r:?}"
    );
    // An unknown secret still reads as one.
    let (_, r) = t.raw(
        "auto-echo",
        &secret.replace(|c: char| c.is_ascii_digit(), "x"),
    );
    assert_eq!(r.status, BAD_SECRET, "{r:?}");
}

/// Revokes `gid` in the store as if it happened `ago_ms` before now.
async fn revoke_back_then(url: &str, gid: &str, ago_ms: i64) {
    let s = jitgate::store::Store::connect(url, 1).await.unwrap();
    let at = jitgate::clock::now_ms() - ago_ms;
    let audit =
        jitgate::audit::AuditEntry::new("dave", "grant.revoked", gid, serde_json::json!({}));
    s.end_grant(
        gid,
        jitgate::store::GrantEnd::Revoked,
        "dave",
        "long ago",
        at,
        &audit,
    )
    .await
    .unwrap();
    s.close().await;
}

#[test]
fn a_secret_of_a_grant_that_ended_over_a_day_ago_reads_as_unknown() {
    let mut t = Tunnel::start();
    let (gid, secret) = t.grant(BOB, "auto-echo", "5m");
    assert!(t.d.stop().success());
    let url = format!(
        "sqlite://{}",
        t.d.dir.join("data").join("jitgate.db").display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Retired then, and not yet pruned (nothing has ended since).
    rt.block_on(revoke_back_then(
        &url,
        &gid,
        jitgate::store::RETIRED_FOR_MS + 60_000,
    ));
    t.d.spawn();
    let (_, r) = t.raw("auto-echo", &secret);
    assert_eq!(r.status, BAD_SECRET, "{r:?}");
    assert!(r.message.contains("not valid"), "{r:?}");
}
